"""Rank quantiles on constructed values with known answers."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from backend.scoring.ranks import rank_quantile


def test_rank_quantile_known_values_and_ties() -> None:
    np.testing.assert_allclose(rank_quantile(np.array([3.0, 1.0, 2.0])), [1.0, 0.0, 0.5])
    np.testing.assert_allclose(rank_quantile(np.array([5.0, 5.0, 1.0, 9.0])), [0.5, 0.5, 0.0, 1.0])
    np.testing.assert_array_equal(rank_quantile(np.array([7.0])), [0.5])
    assert rank_quantile(np.array([])).size == 0


def test_rank_quantile_equals_average_ranks() -> None:
    values = np.random.default_rng(0).integers(0, 20, 500).astype(float)
    np.testing.assert_allclose(rank_quantile(values), (rankdata(values) - 1) / 499)
