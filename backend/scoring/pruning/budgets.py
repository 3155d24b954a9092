"""How many samples to keep, overall and per class.

The pruning ``ratio`` is the fraction of samples **removed** everywhere in Thresher: ratio 0.3
keeps 70% (``round(N * (1 - ratio))``, at least one sample). Per-class policies:

* ``"proportional"`` (default): every class keeps the same fraction, rounded by largest
  remainder so that the quotas add up exactly.
* ``"balanced"``: equal quotas per class, capped at the class size; what a small class cannot
  use is shared equally among the others (water-filling).
* ``"none"``: no per-class quotas; the procedure selects over the whole set (class-agnostic, as
  in the original top-k / CCS papers).
* ``min_per_class=K`` (with proportional or balanced; the CLI spells it ``min:K``): each class
  keeps at least min(K, class size); the rest of the budget follows the policy.
"""

from __future__ import annotations

import numpy as np

POLICIES = ("proportional", "balanced", "none")


def check_ratio(ratio: float) -> float:
    """Validate a pruning ratio (fraction REMOVED) and return it as float."""
    try:
        r = float(ratio)
    except (TypeError, ValueError):
        raise ValueError(f"ratio must be a number, got {ratio!r}") from None
    if not 0.0 <= r < 1.0 or not np.isfinite(r):
        raise ValueError(
            f"ratio is the fraction of samples to REMOVE and must lie in [0, 1), got {ratio!r}"
        )
    return r


def n_to_keep(n: int, ratio: float) -> int:
    """Number of samples kept when removing ``ratio`` of ``n``: round(n (1 - ratio)), >= 1."""
    if n < 1:
        raise ValueError("cannot prune an empty set of samples")
    r = check_ratio(ratio)
    return int(min(n, max(1, round(n * (1.0 - r)))))


def parse_policy(policy: str) -> tuple[str, int]:
    """``"proportional"``, ``"balanced"``, ``"none"`` or ``"min:K"`` -> (policy, min_per_class).

    ``"min:K"`` means proportional with at least K per class.
    """
    text = str(policy).strip().lower()
    if text.startswith("min:") or text.startswith("minimum:"):
        value = text.split(":", 1)[1]
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"per-class minimum must be a positive integer, got {policy!r}")
        return "proportional", int(value)
    if text not in POLICIES:
        raise ValueError(
            f"unknown per-class policy {policy!r}; choose proportional, balanced, none or min:K"
        )
    return text, 0


def allocate(
    capacity: np.ndarray, weights: np.ndarray, total: int, floor: np.ndarray | None = None
) -> np.ndarray:
    """Integer quotas q with floor <= q <= capacity, sum q = total, q roughly proportional to
    ``weights`` (water-filling).

    Algorithm
    ---------
    1. Real-valued x_c = clip(t * w_c, floor_c, cap_c); the scalar t is found by bisection so
       that sum x = total (the sum is non-decreasing in t).
    2. q = floor(x); the missing units go to the largest fractional parts (ties: lower index)
       among classes still below capacity.
    """
    cap = np.asarray(capacity, dtype=np.int64)
    w = np.asarray(weights, dtype=np.float64)
    low = np.zeros_like(cap) if floor is None else np.minimum(np.asarray(floor, np.int64), cap)
    if total > cap.sum():
        raise ValueError(f"cannot keep {total} samples out of {int(cap.sum())}")
    if low.sum() > total:
        raise ValueError(
            f"the per-class minimums need {int(low.sum())} samples but the budget is {total}; "
            "lower the ratio or the minimum"
        )
    if (w <= 0).any():
        raise ValueError("allocation weights must be positive")

    def filled(t: float) -> np.ndarray:
        return np.clip(t * w, low, cap)

    lo_t, hi_t = 0.0, float((cap / w).max()) + 1.0
    for _ in range(200):
        mid = 0.5 * (lo_t + hi_t)
        if filled(mid).sum() < total:
            lo_t = mid
        else:
            hi_t = mid
    x = filled(hi_t)
    quota = np.minimum(np.floor(x + 1e-9).astype(np.int64), cap)
    missing = total - int(quota.sum())
    while missing > 0:
        frac = np.where(quota < cap, x - quota, -np.inf)
        order = np.argsort(-frac, kind="stable")[:missing]
        order = order[np.isfinite(frac[order])]
        quota[order] += 1
        missing = total - int(quota.sum())
    while missing < 0:  # floating slack: take back from the smallest fractional parts
        frac = np.where(quota > low, x - quota, np.inf)
        order = np.argsort(frac, kind="stable")[:-missing]
        quota[order] -= 1
        missing = total - int(quota.sum())
    return quota


def class_quotas(
    labels: np.ndarray,
    n_keep: int,
    *,
    policy: str = "proportional",
    min_per_class: int = 0,
) -> dict[int, int]:
    """Per-class keep counts {class id: count} for the classes present in ``labels``.

    ``policy`` is ``"proportional"`` or ``"balanced"`` (see the module docstring);
    ``min_per_class`` raises every class to at least min(K, class size).
    """
    y = np.asarray(labels)
    if y.size == 0:
        raise ValueError("cannot prune an empty set of samples")
    if policy not in ("proportional", "balanced"):
        raise ValueError(f"class quotas need policy proportional or balanced, got {policy!r}")
    if min_per_class < 0:
        raise ValueError(f"min_per_class must be >= 0, got {min_per_class}")
    classes, counts = np.unique(y, return_counts=True)
    weights = counts.astype(np.float64) if policy == "proportional" else np.ones(classes.size)
    quota = allocate(counts, weights, n_keep, np.full(classes.size, min_per_class))
    return {int(c): int(q) for c, q in zip(classes, quota, strict=True)}
