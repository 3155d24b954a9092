"""Pruning procedures: turn a difficulty score into the indices of the samples to KEEP.

Conventions shared by every procedure here and in :mod:`sims_sampling`:

* ``ratio`` is the fraction of samples **removed** (0.3 keeps 70%); it must lie in [0, 1).
* ``difficulty`` is (N,) with higher = harder / more important (registry scores are oriented
  that way by :func:`backend.scoring.pruning.registry.difficulty_of`).
* ``per_class`` is ``"proportional"`` (default), ``"balanced"``, ``"none"`` or ``"min:K"`` (see
  :mod:`budgets`); class quotas need ``labels``. ``labels=None`` means one class.
* ``exclude`` is an optional (N,) bool mask of samples removed first (e.g. SemDeDup
  near-duplicates); they count towards the removed fraction. If more are excluded than the
  ratio removes, excluded samples are added back at random so the kept count stays exact.
* Everything is seeded; the result is a sorted int64 array of kept indices.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from backend.scoring.pruning.budgets import class_quotas, n_to_keep, parse_policy

log = logging.getLogger(__name__)

# (candidate indices, how many to keep, rng) -> chosen indices (a subset of the candidates)
Selector = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]


def _rng(seed: int, *tags: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, *tags])


def _check_difficulty(difficulty: np.ndarray, n: int | None = None) -> np.ndarray:
    d = np.asarray(difficulty, dtype=np.float64)
    if d.ndim != 1 or d.size == 0:
        raise ValueError(f"difficulty must be a non-empty (N,) array, got shape {d.shape}")
    if n is not None and d.size != n:
        raise ValueError(f"difficulty has {d.size} entries but there are {n} samples")
    if not np.isfinite(d).all():
        raise ValueError("difficulty contains NaN or infinite values")
    return d


def select(
    n: int,
    ratio: float,
    selector: Selector,
    *,
    labels: np.ndarray | None = None,
    per_class: str = "proportional",
    seed: int = 0,
    exclude: np.ndarray | None = None,
    n_keep: int | None = None,
) -> np.ndarray:
    """Run ``selector`` under the shared budget / per-class / exclusion rules (module docstring).

    Algorithm
    ---------
    1. n_keep = round(n (1 - ratio)) (>= 1). Candidates = samples not in ``exclude``; if fewer
       candidates than n_keep, all are kept plus a seeded random draw of excluded ones.
    2. ``per_class="none"``: one call ``selector(candidates, n_keep, rng)``. Otherwise class
       quotas over the candidates (:func:`budgets.class_quotas`) and one call per class, each
       with its own generator derived from (seed, class id), so a class's pick does not depend
       on the other classes.
    ``n_keep`` overrides the count derived from ``ratio`` (for multi-stage procedures).
    """
    if n_keep is None:
        n_keep = n_to_keep(n, ratio)
    elif not 1 <= n_keep <= n:
        raise ValueError(f"n_keep must lie in [1, {n}], got {n_keep}")
    policy, min_per_class = parse_policy(per_class)
    y = None
    if labels is not None:
        y = np.asarray(labels)
        if y.shape != (n,):
            raise ValueError(f"labels must have shape ({n},), got {y.shape}")
    candidates = np.arange(n, dtype=np.int64)
    forced = np.empty(0, dtype=np.int64)
    if exclude is not None:
        mask = np.asarray(exclude, dtype=bool)
        if mask.shape != (n,):
            raise ValueError(f"exclude must be a (N,) bool mask with N={n}, got {mask.shape}")
        candidates = np.flatnonzero(~mask)
        if candidates.size <= n_keep:
            excluded = np.flatnonzero(mask)
            extra = n_keep - candidates.size
            log.info("%d excluded samples put back to keep %d of %d", extra, n_keep, n)
            forced = _rng(seed, 2**31 - 1).choice(excluded, size=extra, replace=False)
            return np.sort(np.concatenate([candidates, forced])).astype(np.int64)
    if policy == "none" or y is None:
        chosen = [selector(candidates, n_keep, _rng(seed))]
    else:
        quotas = class_quotas(y[candidates], n_keep, policy=policy, min_per_class=min_per_class)
        chosen = []
        for cls, quota in quotas.items():
            members = candidates[y[candidates] == cls]
            if quota:
                chosen.append(selector(members, quota, _rng(seed, cls + 1)))
    kept = np.sort(np.concatenate(chosen)).astype(np.int64)
    if kept.size != n_keep or np.unique(kept).size != kept.size:
        raise RuntimeError(f"selector returned {kept.size} unique-or-not indices, wanted {n_keep}")
    return kept


def random_prune(
    n: int,
    ratio: float,
    *,
    labels: np.ndarray | None = None,
    per_class: str = "proportional",
    seed: int = 0,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """Uniform random subset; keeps round(n (1 - ratio)) of n (ratio = fraction REMOVED).

    Returns sorted int64 kept indices.
    """

    def pick(idx: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
        return rng.choice(idx, size=k, replace=False)

    return select(n, ratio, pick, labels=labels, per_class=per_class, seed=seed, exclude=exclude)


def topk_prune(
    difficulty: np.ndarray,
    ratio: float,
    *,
    keep: str = "hard",
    labels: np.ndarray | None = None,
    per_class: str = "proportional",
    seed: int = 0,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """Keep the hardest (``keep="hard"``) or easiest (``keep="easy"``) samples by ``difficulty``.

    ``ratio`` is the fraction REMOVED. Ties are broken by index (deterministic; ``seed`` only
    matters for re-filling excluded samples). Returns sorted int64 kept indices.
    """
    d = _check_difficulty(difficulty)
    if keep not in ("hard", "easy"):
        raise ValueError(f"keep must be 'hard' or 'easy', got {keep!r}")
    sign = -1.0 if keep == "hard" else 1.0

    def pick(idx: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
        order = np.argsort(sign * d[idx], kind="stable")
        return idx[order[:k]]

    return select(
        d.size, ratio, pick, labels=labels, per_class=per_class, seed=seed, exclude=exclude
    )


def check_ccs_parameters(*, beta: float, n_strata: int) -> None:
    """ValueError unless 0 <= beta < 1 and n_strata >= 1 (also NaN-safe)."""
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta (fraction of hardest samples cut) must lie in [0, 1), got {beta}")
    if not n_strata >= 1:
        raise ValueError(f"n_strata must be >= 1, got {n_strata}")


def ccs_select(
    difficulty: np.ndarray,
    candidates: np.ndarray,
    budget: int,
    rng: np.random.Generator,
    *,
    beta: float = 0.0,
    n_strata: int = 50,
) -> np.ndarray:
    """Coverage-centric coreset selection on one pool (Zheng et al. 2023, Algorithm 1).

    Algorithm
    ---------
    1. Drop the floor(beta |pool|) hardest samples (hard cut-off: likely mislabeled), fewer if
       that would leave less than ``budget``.
    2. Split the score range [min, max] of the rest into ``n_strata`` equal-width strata.
    3. Visit the non-empty strata from smallest to largest (ties: lower score first); each gets
       m = min(|stratum|, floor(budget_left / strata_left)) samples drawn uniformly from it.
    The last stratum receives all that is left, so exactly ``budget`` samples are returned.
    """
    check_ccs_parameters(beta=beta, n_strata=n_strata)
    d = difficulty[candidates]
    n_cut = min(int(np.floor(beta * candidates.size)), candidates.size - budget)
    order = np.argsort(-d, kind="stable")
    pool = candidates[order[n_cut:]]
    scores = difficulty[pool]
    lo, hi = scores.min(), scores.max()
    width = (hi - lo) / n_strata
    if width > 0:
        stratum = np.minimum(((scores - lo) / width).astype(np.int64), n_strata - 1)
    else:
        stratum = np.zeros(pool.size, dtype=np.int64)
    sizes = np.bincount(stratum, minlength=n_strata)
    visit = [s for s in np.argsort(sizes, kind="stable") if sizes[s] > 0]
    chosen = []
    left = budget
    for i, s in enumerate(visit):
        take = min(int(sizes[s]), left // (len(visit) - i))
        if take:
            chosen.append(rng.choice(pool[stratum == s], size=take, replace=False))
        left -= take
    return np.concatenate(chosen) if chosen else np.empty(0, np.int64)


def ccs_prune(
    difficulty: np.ndarray,
    ratio: float,
    *,
    beta: float = 0.0,
    n_strata: int = 50,
    labels: np.ndarray | None = None,
    per_class: str = "proportional",
    seed: int = 0,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """CCS (Zheng et al. 2023, "Coverage-centric Coreset Selection for High Pruning Rates", ICLR).

    See :func:`ccs_select` for the algorithm; with a per-class policy it runs inside each class
    on that class's quota (the paper is class-agnostic: ``per_class="none"``). ``ratio`` is the
    fraction REMOVED; ``beta`` the hard cut-off (the paper grid-searches it per ratio: 0 at low
    ratios, larger at high ones). Returns sorted int64 kept indices.
    """
    d = _check_difficulty(difficulty)

    def pick(idx: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
        return ccs_select(d, idx, k, rng, beta=beta, n_strata=n_strata)

    return select(
        d.size, ratio, pick, labels=labels, per_class=per_class, seed=seed, exclude=exclude
    )
