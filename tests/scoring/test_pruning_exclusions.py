"""What a prune removes before ranking: flagged label issues (the most suspicious first), then
near-duplicates, within the ratio's budget."""

from __future__ import annotations

import numpy as np
import pytest

from backend.scoring.pruning.budgets import n_to_keep
from backend.scoring.pruning.exclusions import decided_pool, removed_first
from backend.scoring.pruning.procedures import topk_prune


def test_flags_within_the_budget_are_all_removed() -> None:
    flags = np.zeros(10, bool)
    flags[[1, 4]] = True
    first = removed_first(10, 0.3, label_issues=flags, label_issue_score=np.linspace(0, 1, 10))
    np.testing.assert_array_equal(np.flatnonzero(first.mask), [1, 4])
    assert (first.n_label_issues, first.n_duplicates) == (2, 0)


def test_more_flags_than_the_budget_removes_the_most_suspicious() -> None:
    flags = np.zeros(10, bool)
    flags[[0, 2, 5, 7, 9]] = True
    score = np.array([0.9, 0, 0.6, 0, 0, 0.95, 0, 0.7, 0, 0.61])
    first = removed_first(10, 0.3, label_issues=flags, label_issue_score=score)  # budget: 3
    np.testing.assert_array_equal(np.flatnonzero(first.mask), [0, 5, 7])
    assert first.n_label_issues == 3
    with pytest.raises(ValueError, match="label_issue_score"):
        removed_first(10, 0.3, label_issues=flags)


def test_duplicates_take_what_the_label_issues_leave() -> None:
    flags = np.zeros(20, bool)
    flags[[0, 1]] = True
    dups = np.zeros(20, bool)
    dups[[1, 5, 6, 7, 8, 9]] = True  # 1 is also flagged
    first = removed_first(20, 0.25, label_issues=flags, label_issue_score=np.ones(20), duplicates=dups, seed=3)
    assert first.mask.sum() == 5 and first.mask[[0, 1]].all()  # budget 5: 2 issues + 3 of the 5 other dups
    assert set(np.flatnonzero(first.mask)) - {0, 1} < {5, 6, 7, 8, 9}
    assert (first.n_label_issues, first.n_duplicates) == (2, 3)
    again = removed_first(20, 0.25, label_issues=flags, label_issue_score=np.ones(20), duplicates=dups, seed=3)
    np.testing.assert_array_equal(first.mask, again.mask)


def test_duplicates_alone_and_nothing_at_all() -> None:
    dups = np.arange(12) % 3 == 0  # 4 duplicates, budget 1
    first = removed_first(12, 0.1, label_issues=np.zeros(12, bool), duplicates=dups)
    assert first.mask.sum() == 1 and first.mask[dups].sum() == 1
    assert (first.n_label_issues, first.n_duplicates) == (0, 1)
    assert removed_first(12, 0.5, duplicates=dups).n_duplicates == 4
    assert removed_first(12, 0.1).mask is None
    assert removed_first(12, 0.1, label_issues=np.zeros(12, bool)).mask is None


def test_keep_hard_no_longer_keeps_the_flagged_hardest() -> None:
    """The failure it prevents: mislabeled samples score hardest, so keep-hard keeps them."""
    difficulty = np.arange(10, dtype=float)  # 8 and 9 hardest: the mislabeled ones
    flags = difficulty >= 8
    first = removed_first(10, 0.5, label_issues=flags, label_issue_score=difficulty / 10)
    np.testing.assert_array_equal(topk_prune(difficulty, 0.5), [5, 6, 7, 8, 9])
    np.testing.assert_array_equal(topk_prune(difficulty, 0.5, exclude=first.mask), [3, 4, 5, 6, 7])


def test_a_per_class_minimum_outranks_the_exclusions() -> None:
    """min:K keeps every class at min(K, its size) candidates: duplicates go back first, then the
    least suspicious flags."""
    labels = np.array([0] * 10 + [1] * 90)
    flags = np.zeros(100, bool)
    flags[:7] = True  # 7 of class 0's 10 flagged
    score = np.zeros(100)
    score[:7] = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]
    dups = np.zeros(100, bool)
    dups[7] = True  # and one of its other 3 a near-duplicate
    first = removed_first(100, 0.3, label_issues=flags, label_issue_score=score, duplicates=dups,
                          labels=labels, min_per_class=5)
    kept_candidates = np.flatnonzero(~first.mask[:10])
    np.testing.assert_array_equal(kept_candidates, [5, 6, 7, 8, 9])  # the duplicate, then 0.3 and 0.4, back
    assert (first.n_label_issues, first.n_duplicates, first.n_flagged) == (5, 0, 7)
    plain = removed_first(100, 0.3, label_issues=flags, label_issue_score=score, duplicates=dups)
    assert (~plain.mask[:10]).sum() == 2 and not plain.fills_budget


def test_flags_that_fill_the_budget_say_so() -> None:
    flags = np.arange(10) < 4
    first = removed_first(10, 0.3, label_issues=flags, label_issue_score=np.linspace(1, 0, 10))
    assert first.fills_budget and first.n_flagged == 4 and first.n_label_issues == 3 == first.budget


def test_bad_masks() -> None:
    with pytest.raises(ValueError, match="label_issues must be a \\(5,\\) bool mask"):
        removed_first(5, 0.2, label_issues=np.zeros(4, bool))
    with pytest.raises(ValueError, match="label_issue_score must have shape"):
        removed_first(5, 0.2, label_issues=np.ones(5, bool), label_issue_score=np.ones(3))


def test_decisions_split_the_pool_and_the_budget() -> None:
    dropped = np.zeros(20, bool)
    dropped[[0, 1]] = True
    pinned = np.zeros(20, bool)
    pinned[[5, 6, 7]] = True
    pool = decided_pool(20, 0.5, dropped=dropped, pinned=pinned)  # keeps 10 of 20: 3 pinned + 7 chosen
    np.testing.assert_array_equal(pool.pinned, [5, 6, 7])
    np.testing.assert_array_equal(pool.free, [2, 3, 4, *range(8, 20)])
    assert (pool.n_dropped, pool.n_keep, pool.n_free_keep) == (2, 10, 7)
    assert n_to_keep(pool.free.size, pool.free_ratio) == 7 and not pool.pinned_fill_budget


def test_more_pinned_than_kept_slots_and_more_dropped_than_removed() -> None:
    pinned = np.zeros(10, bool)
    pinned[:4] = True
    pool = decided_pool(10, 0.8, pinned=pinned)  # keeps 2, but 4 are pinned
    assert pool.n_free_keep == 0 and pool.pinned_fill_budget
    dropped = np.zeros(10, bool)
    dropped[:6] = True
    pool = decided_pool(10, 0.3, dropped=dropped)  # keeps 7, but only 4 are left
    assert (pool.n_free_keep, pool.free_ratio) == (4, 0.0)


def test_a_row_cannot_be_both_dropped_and_pinned() -> None:
    both = np.zeros(5, bool)
    both[2] = True
    with pytest.raises(ValueError, match="both dropped and pinned"):
        decided_pool(5, 0.5, dropped=both, pinned=both)
    with pytest.raises(ValueError, match="pinned must be a"):
        decided_pool(5, 0.5, pinned=np.zeros(4, bool))


@pytest.mark.parametrize("n", [7, 101, 1000, 99_991])
def test_the_free_ratio_keeps_exactly_the_free_slots(n: int) -> None:
    rng = np.random.default_rng(n)
    for ratio in (0.1, 0.3, 0.5, 0.77, 0.9):
        status = rng.integers(0, 6, n)  # 0: dropped, 1: pinned, else free
        pool = decided_pool(n, ratio, dropped=status == 0, pinned=status == 1)
        if pool.n_free_keep:
            assert n_to_keep(pool.free.size, pool.free_ratio) == pool.n_free_keep
