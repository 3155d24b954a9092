"""Pruning procedures: random, top-k and CCS on constructed scores with known kept sets."""

from __future__ import annotations

import numpy as np
import pytest

from backend.scoring.pruning.budgets import n_to_keep
from backend.scoring.pruning.procedures import (
    ccs_prune,
    ccs_select,
    random_prune,
    select,
    topk_prune,
)


def check_kept(kept: np.ndarray, n: int, n_keep: int) -> None:
    assert kept.dtype == np.int64
    assert kept.size == n_keep
    assert np.array_equal(kept, np.unique(kept))  # sorted and unique
    assert kept.min() >= 0 and kept.max() < n


# -- random -----------------------------------------------------------------------------------


@pytest.mark.parametrize("ratio", [0.0, 0.3, 0.5, 0.9, 0.99])
@pytest.mark.parametrize("per_class", ["proportional", "balanced", "none", "min:3"])
def test_random_keeps_exactly_n_to_keep(ratio: float, per_class: str) -> None:
    labels = np.repeat([0, 1, 2], [5, 25, 70])
    if per_class == "min:3" and ratio == 0.99:
        with pytest.raises(ValueError, match="minimums need 9 samples but the budget is 1"):
            random_prune(100, ratio, labels=labels, per_class=per_class)
        return
    kept = random_prune(100, ratio, labels=labels, per_class=per_class, seed=3)
    check_kept(kept, 100, n_to_keep(100, ratio))


def test_random_is_seeded() -> None:
    a = random_prune(200, 0.5, seed=11)
    np.testing.assert_array_equal(a, random_prune(200, 0.5, seed=11))
    assert not np.array_equal(a, random_prune(200, 0.5, seed=12))


def test_random_ratio_is_fraction_removed_and_quotas_hold() -> None:
    labels = np.repeat([0, 1], [20, 80])
    kept = random_prune(100, 0.3, labels=labels)
    assert kept.size == 70
    assert np.bincount(labels[kept]).tolist() == [14, 56]
    kept = random_prune(100, 0.6, labels=labels, per_class="balanced")
    assert np.bincount(labels[kept]).tolist() == [20, 20]


def test_random_class_pick_does_not_depend_on_other_classes() -> None:
    small = np.repeat([0, 1], [10, 10])
    large = np.repeat([0, 1], [10, 30])
    kept_small = random_prune(20, 0.5, labels=small, seed=5)
    kept_large = random_prune(40, 0.5, labels=large, seed=5)
    np.testing.assert_array_equal(kept_small[kept_small < 10], kept_large[kept_large < 10])


def test_random_with_exclude() -> None:
    exclude = np.zeros(50, dtype=bool)
    exclude[::5] = True  # 10 excluded
    kept = random_prune(50, 0.4, exclude=exclude, seed=1)
    check_kept(kept, 50, 30)
    assert not exclude[kept].any()
    # more excluded than the ratio removes: all others kept, plus a seeded draw of excluded ones
    kept = random_prune(50, 0.1, exclude=exclude, seed=1)
    check_kept(kept, 50, 45)
    assert set(np.flatnonzero(~exclude)) <= set(kept.tolist())
    assert exclude[kept].sum() == 5
    np.testing.assert_array_equal(kept, random_prune(50, 0.1, exclude=exclude, seed=1))


# -- top-k ------------------------------------------------------------------------------------


def test_keep_hard_and_keep_easy_known_sets() -> None:
    difficulty = np.array([0.5, 3.0, -1.0, 2.0, 9.0, 0.0, 1.0, 4.0, 8.0, 7.0])
    np.testing.assert_array_equal(topk_prune(difficulty, 0.6, per_class="none"), [4, 7, 8, 9])
    np.testing.assert_array_equal(
        topk_prune(difficulty, 0.6, keep="easy", per_class="none"), [0, 2, 5, 6]
    )


def test_topk_ties_broken_by_index() -> None:
    difficulty = np.array([1.0, 2.0, 2.0, 2.0, 0.0])
    np.testing.assert_array_equal(topk_prune(difficulty, 0.6), [1, 2])
    np.testing.assert_array_equal(topk_prune(difficulty, 0.6, keep="easy"), [0, 4])


def test_topk_per_class_keeps_hardest_of_each_class() -> None:
    difficulty = np.array([5.0, 6.0, 7.0, 8.0, 0.1, 0.2, 0.3, 0.4])
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(topk_prune(difficulty, 0.5, labels=labels), [2, 3, 6, 7])
    np.testing.assert_array_equal(
        topk_prune(difficulty, 0.5, labels=labels, per_class="none"), [0, 1, 2, 3]
    )


def test_topk_skips_excluded() -> None:
    difficulty = np.arange(10.0)
    exclude = np.zeros(10, dtype=bool)
    exclude[[9, 7]] = True
    np.testing.assert_array_equal(topk_prune(difficulty, 0.7, exclude=exclude), [5, 6, 8])


def test_topk_errors() -> None:
    with pytest.raises(ValueError, match="keep must be 'hard' or 'easy'"):
        topk_prune(np.ones(3), 0.5, keep="middle")
    with pytest.raises(ValueError, match="NaN or infinite"):
        topk_prune(np.array([1.0, np.nan]), 0.5)
    with pytest.raises(ValueError, match="non-empty \\(N,\\)"):
        topk_prune(np.ones((2, 2)), 0.5)
    with pytest.raises(ValueError, match="REMOVE"):
        topk_prune(np.ones(4), 1.0)
    with pytest.raises(ValueError, match="labels must have shape \\(4,\\)"):
        topk_prune(np.ones(4), 0.5, labels=np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="exclude must be a \\(N,\\) bool mask"):
        topk_prune(np.ones(4), 0.5, exclude=np.zeros(5, dtype=bool))
    with pytest.raises(ValueError, match="unknown per-class policy"):
        topk_prune(np.ones(4), 0.5, per_class="fair")


def test_select_checks_the_selector_and_n_keep() -> None:
    def greedy(idx: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
        return idx[: k + 1]

    with pytest.raises(RuntimeError, match="wanted 5"):
        select(10, 0.5, greedy)

    def first(idx: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
        return idx[:k]

    np.testing.assert_array_equal(select(10, 0.5, first, n_keep=3), [0, 1, 2])
    with pytest.raises(ValueError, match="n_keep must lie in \\[1, 10\\]"):
        select(10, 0.5, first, n_keep=0)


# -- CCS --------------------------------------------------------------------------------------


def test_ccs_hard_cutoff_drops_the_hardest_fraction() -> None:
    difficulty = np.random.default_rng(0).permutation(100).astype(float)
    kept = ccs_prune(difficulty, 0.5, beta=0.1, per_class="none", seed=2)
    check_kept(kept, 100, 50)
    assert difficulty[kept].max() < 90  # the 10 hardest are cut
    # beta 0.5 at ratio 0.2 would leave fewer than 80: only the 20 hardest are cut, all else kept
    kept = ccs_prune(difficulty, 0.2, beta=0.5, per_class="none")
    np.testing.assert_array_equal(np.sort(difficulty[kept]), np.arange(80.0))


def test_ccs_gives_the_budget_to_small_strata_first() -> None:
    # range [0, 50] in 50 strata of width 1: sizes 3 (stratum 0), 10 (10), 40 (30), 1 (49)
    difficulty = np.concatenate([np.full(3, 0.5), np.full(10, 10.5), np.full(40, 30.5), [50.0]])
    n = difficulty.size  # 54; keep 20
    kept = ccs_prune(difficulty, 1 - 20 / n, per_class="none", seed=4)
    check_kept(kept, n, 20)
    # visit by size: 1 -> 1, 3 -> min(3, 19 // 3) = 3, 10 -> min(10, 16 // 2) = 8, 40 -> 8
    values, counts = np.unique(difficulty[kept], return_counts=True)
    assert dict(zip(values.tolist(), counts.tolist(), strict=True)) == {
        0.5: 3,
        10.5: 8,
        30.5: 8,
        50.0: 1,
    }


def test_ccs_select_two_strata_exact() -> None:
    difficulty = np.concatenate([np.linspace(0.0, 0.4, 5), np.linspace(0.6, 1.0, 95)])
    kept = ccs_select(difficulty, np.arange(100), 10, np.random.default_rng(0), n_strata=2)
    assert np.sort(kept[kept < 5]).tolist() == [0, 1, 2, 3, 4]  # the small stratum fully kept
    assert (kept >= 5).sum() == 5


def test_ccs_uniform_inside_a_stratum_and_seeded() -> None:
    difficulty = np.zeros(100)  # one stratum (zero width): a uniform random draw
    a = ccs_prune(difficulty, 0.7, seed=1)
    np.testing.assert_array_equal(a, ccs_prune(difficulty, 0.7, seed=1))
    assert not np.array_equal(a, ccs_prune(difficulty, 0.7, seed=2))
    # over many seeds every sample is drawn about equally often (30% of the time)
    hits = np.zeros(100)
    for seed in range(200):
        hits[ccs_prune(difficulty, 0.7, seed=seed)] += 1
    assert hits.sum() == 200 * 30
    assert 0.15 < hits.min() / 200 and hits.max() / 200 < 0.45


def test_ccs_covers_the_score_range_unlike_keep_hard() -> None:
    difficulty = np.random.default_rng(3).uniform(size=500)
    kept = ccs_prune(difficulty, 0.9, per_class="none")
    hard = topk_prune(difficulty, 0.9, per_class="none")
    assert difficulty[hard].min() > 0.85
    assert difficulty[kept].min() < 0.05 and difficulty[kept].max() > 0.95


def test_ccs_per_class_and_exclude() -> None:
    rng = np.random.default_rng(8)
    difficulty = rng.normal(size=120)
    labels = np.repeat([0, 1, 2], [20, 40, 60])
    exclude = np.zeros(120, dtype=bool)
    exclude[rng.choice(120, 12, replace=False)] = True
    kept = ccs_prune(difficulty, 0.5, labels=labels, exclude=exclude, seed=0)
    check_kept(kept, 120, 60)
    assert not exclude[kept].any()
    available = np.bincount(labels[~exclude], minlength=3)
    counts = np.bincount(labels[kept], minlength=3)
    # proportional quotas over the 108 candidates, summing to 60
    np.testing.assert_allclose(counts, available * 60 / 108, atol=1)


def test_ccs_errors() -> None:
    with pytest.raises(ValueError, match="beta .* must lie in \\[0, 1\\)"):
        ccs_prune(np.arange(10.0), 0.5, beta=1.0)
    with pytest.raises(ValueError, match="n_strata must be >= 1"):
        ccs_prune(np.arange(10.0), 0.5, n_strata=0)
