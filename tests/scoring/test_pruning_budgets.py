"""Pruning budgets: ratio = fraction REMOVED, exact totals and per-class quotas (known answers)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from backend.scoring.pruning.budgets import (
    allocate,
    check_ratio,
    class_quotas,
    n_to_keep,
    parse_policy,
)


def labels_of(counts: list[int]) -> np.ndarray:
    return np.repeat(np.arange(len(counts)), counts)


# -- ratio semantics --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "ratio", "kept"),
    [
        (100, 0.3, 70),  # ratio is the fraction removed
        (100, 0.0, 100),
        (100, 0.9, 10),
        (100, 0.99, 1),
        (10, 0.95, 1),  # round(0.5) = 0, but at least one sample is kept
        (1, 0.5, 1),
        (1797, 0.5, 898),  # round(898.5) = 898 (round half to even)
        (3, 0.34, 2),
    ],
)
def test_n_to_keep_removes_the_ratio(n: int, ratio: float, kept: int) -> None:
    assert n_to_keep(n, ratio) == kept


def test_check_ratio_returns_float() -> None:
    assert check_ratio(0) == 0.0
    assert isinstance(check_ratio(np.float32(0.25)), float)
    assert check_ratio(np.float32(0.25)) == 0.25


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5, math.nan, math.inf, -math.inf])
def test_check_ratio_rejects_out_of_range(ratio: float) -> None:
    with pytest.raises(ValueError, match=r"REMOVE.*\[0, 1\)"):
        check_ratio(ratio)


@pytest.mark.parametrize("ratio", [None, "abc", [0.3]])
def test_check_ratio_rejects_non_numbers(ratio: object) -> None:
    with pytest.raises(ValueError, match="ratio must be a number"):
        check_ratio(ratio)  # type: ignore[arg-type]


def test_n_to_keep_rejects_empty_and_bad_ratio() -> None:
    with pytest.raises(ValueError, match="empty"):
        n_to_keep(0, 0.5)
    with pytest.raises(ValueError, match="REMOVE"):
        n_to_keep(10, 1.0)


# -- policy strings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("proportional", ("proportional", 0)),
        ("balanced", ("balanced", 0)),
        ("none", ("none", 0)),
        ("  Balanced ", ("balanced", 0)),
        ("min:5", ("proportional", 5)),
        ("MIN:12", ("proportional", 12)),
        ("minimum:3", ("proportional", 3)),
    ],
)
def test_parse_policy(text: str, parsed: tuple[str, int]) -> None:
    assert parse_policy(text) == parsed


@pytest.mark.parametrize("text", ["min:0", "min:-2", "min:x", "min:", "min:2.5"])
def test_parse_policy_rejects_bad_minimum(text: str) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        parse_policy(text)


@pytest.mark.parametrize("text", ["uniform", "", "prop", "balanced:3"])
def test_parse_policy_rejects_unknown_names(text: str) -> None:
    with pytest.raises(ValueError, match="unknown per-class policy.*proportional, balanced, none"):
        parse_policy(text)


# -- class quotas -----------------------------------------------------------------------------


def test_proportional_exact_fractions() -> None:
    assert class_quotas(labels_of([10, 30, 60]), 50) == {0: 5, 1: 15, 2: 30}


def test_proportional_largest_remainder_ties_go_to_lower_class() -> None:
    # 2/3 each: floors are 0, the two missing units go to classes 0 and 1
    assert class_quotas(labels_of([1, 1, 1]), 2) == {0: 1, 1: 1, 2: 0}
    # 7 * 0.5 = 3.5 and 5 * 0.5 = 2.5 with 6 to keep: class 0 has the larger share left over
    assert class_quotas(labels_of([7, 5]), 6) == {0: 4, 1: 2}


def test_proportional_can_starve_a_tiny_class_and_min_fixes_it() -> None:
    y = labels_of([3, 97])
    assert class_quotas(y, 10) == {0: 0, 1: 10}  # 0.3 vs 9.7
    assert class_quotas(y, 10, min_per_class=2) == {0: 2, 1: 8}
    # the minimum is capped at the class size
    assert class_quotas(y, 10, min_per_class=5) == {0: 3, 1: 7}


def test_balanced_water_fills_what_a_small_class_cannot_use() -> None:
    # equal shares of 30 would be 10 each; class 0 only has 2, the other 8 are shared equally
    assert class_quotas(labels_of([2, 50, 50]), 30, policy="balanced") == {0: 2, 1: 14, 2: 14}
    assert class_quotas(labels_of([5, 7, 9]), 10, policy="balanced") == {0: 4, 1: 3, 2: 3}
    # balanced with a minimum below the equal share: the minimum does not bind
    quotas = class_quotas(labels_of([2, 40, 40]), 20, policy="balanced", min_per_class=5)
    assert quotas == {0: 2, 1: 9, 2: 9}


def test_min_per_class_exact() -> None:
    y = labels_of([2, 10, 88])
    assert class_quotas(y, 20) == {0: 0, 1: 2, 2: 18}  # 0.4 / 2 / 17.6
    # min 4: class 0 keeps both of its samples, class 1 is lifted to 4, class 2 keeps the rest
    assert class_quotas(y, 20, min_per_class=4) == {0: 2, 1: 4, 2: 14}
    # the minimum applies to every class, so 3 classes x 4 cannot fit in 9
    with pytest.raises(ValueError, match="minimums need 10 samples but the budget is 9"):
        class_quotas(y, 9, min_per_class=4, policy="balanced")


@pytest.mark.parametrize("policy", ["proportional", "balanced"])
@pytest.mark.parametrize("n_keep", [1, 7, 50, 99, 123, 200])
def test_quota_totals_are_exact_and_within_capacity(policy: str, n_keep: int) -> None:
    counts = [1, 3, 17, 40, 139]
    quotas = class_quotas(labels_of(counts), n_keep, policy=policy)
    assert sum(quotas.values()) == n_keep
    assert all(0 <= quotas[c] <= counts[c] for c in range(len(counts)))


def test_quotas_use_class_ids_present() -> None:
    y = np.array([7, 7, 3, 3, 3, 3, 9, 9])
    assert class_quotas(y, 4) == {3: 2, 7: 1, 9: 1}


def test_class_quotas_errors() -> None:
    y = labels_of([5, 5])
    with pytest.raises(ValueError, match="proportional or balanced.*'none'"):
        class_quotas(y, 4, policy="none")
    with pytest.raises(ValueError, match="min_per_class must be >= 0"):
        class_quotas(y, 4, min_per_class=-1)
    with pytest.raises(ValueError, match="empty"):
        class_quotas(np.array([], dtype=int), 1)
    with pytest.raises(ValueError, match="cannot keep 11 samples out of 10"):
        class_quotas(y, 11)
    with pytest.raises(ValueError, match="minimums need 6 samples but the budget is 4"):
        class_quotas(y, 4, min_per_class=3)


def test_allocate_weights_and_floor() -> None:
    q = allocate(np.array([10, 10, 10]), np.array([1.0, 2.0, 7.0]), 10)
    assert q.tolist() == [1, 2, 7]
    # class 2 capped at 3; the rest shared 1 : 2 -> 2.33 / 4.67 -> largest remainder to class 1
    q = allocate(np.array([10, 10, 3]), np.array([1.0, 2.0, 7.0]), 10)
    assert q.tolist() == [2, 5, 3]
    q = allocate(np.array([10, 10]), np.array([1.0, 1.0]), 6, np.array([5, 0]))
    assert q.tolist() == [5, 1]
    with pytest.raises(ValueError, match="weights must be positive"):
        allocate(np.array([3, 3]), np.array([1.0, 0.0]), 2)
