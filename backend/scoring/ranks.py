"""Rank quantiles: how the scorers put scores of different units on one scale (rank ensembles,
SIMS terms, the combined label-noise ranking)."""

from __future__ import annotations

import numpy as np


def rank_quantile(values: np.ndarray) -> np.ndarray:
    """Average-rank quantiles in [0, 1] (0 = smallest); a single value maps to 0.5."""
    v = np.asarray(values, dtype=np.float64)
    n = v.size
    if n == 0:
        return v.copy()
    if n == 1:
        return np.full(1, 0.5)
    order = np.argsort(v, kind="stable")
    ranks = np.empty(n)
    ranks[order] = np.arange(n, dtype=np.float64)
    # average the ranks of ties so that equal scores get equal quantiles
    uniq, inverse = np.unique(v, return_inverse=True)
    if uniq.size < n:
        sums = np.bincount(inverse, weights=ranks)
        counts = np.bincount(inverse)
        ranks = (sums / counts)[inverse]
    return ranks / (n - 1)
