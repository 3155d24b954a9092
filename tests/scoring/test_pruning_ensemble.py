"""Rank ensembles of pruning scores on constructed data with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from backend.scoring.pruning import registry
from backend.scoring.pruning.dynamics_scores import aum_margin, el2n_score
from backend.scoring.pruning.ensemble import rank_ensemble


def test_rank_ensemble_is_the_mean_rank_quantile() -> None:
    a = np.array([10.0, 20.0, 30.0, 40.0])  # ranks 0 1 2 3
    b = np.array([0.4, 0.3, 0.2, 0.1])  # ranks 3 2 1 0
    np.testing.assert_allclose(rank_ensemble([a, a]), [0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(rank_ensemble([a, b]), [0.5] * 4)
    np.testing.assert_allclose(rank_ensemble([a, b], weights=[3, 1]), [0.25, 5 / 12, 7 / 12, 0.75])


def test_rank_ensemble_ignores_scale_and_keeps_ties() -> None:
    a = np.array([1.0, 1.0, 5.0])
    np.testing.assert_allclose(rank_ensemble([a, 1e6 * a - 7]), [0.25, 0.25, 1.0])


@pytest.mark.parametrize(
    ("parts", "weights", "match"),
    [
        ([], None, "at least one"),
        ([np.zeros(3), np.zeros(4)], None, "same length"),
        ([np.array([0.0, np.nan])], None, "finite"),
        ([np.zeros(3)], [-1.0], "non-negative"),
        ([np.zeros(3), np.zeros(3)], [1.0], "non-negative"),
    ],
)
def test_rank_ensemble_rejects_bad_input(parts, weights, match) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match=match):
        rank_ensemble(parts, weights)


def _dynamics(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    logits = rng.normal(size=(2, 6, n, 3))
    logits[..., np.arange(n), y] += rng.uniform(0, 3, size=n)
    return logits, y


def test_registered_ensemble_combines_aum_and_el2n() -> None:
    logits, y = _dynamics()
    got = registry.compute_score("ensemble", registry.ScoreInputs(labels=y, logits=logits))
    expected = rank_ensemble([-aum_margin(logits, y), el2n_score(logits, y)])
    np.testing.assert_allclose(got, expected)
    assert registry.get_score("ensemble").higher_is_harder
    # rebuilt from stored parts (a score run made before the ensemble existed)
    stored = {"aum": aum_margin(logits, y), "el2n": el2n_score(logits, y)}
    np.testing.assert_allclose(registry.from_stored("ensemble", stored), expected)
    assert registry.from_stored("ensemble", {"aum": stored["aum"]}) is None
    assert registry.from_stored("el2n", stored) is None


def test_prune_uses_stored_parts_when_the_ensemble_column_is_missing() -> None:
    logits, y = _dynamics(60)
    stored = {"aum": aum_margin(logits, y), "el2n": el2n_score(logits, y)}
    with_column = {**stored, "ensemble": registry.from_stored("ensemble", stored)}
    a = registry.prune("keep_hard:ensemble", 0.5, labels=y, scores=stored)
    b = registry.prune("keep_hard:ensemble", 0.5, labels=y, scores=with_column)
    np.testing.assert_array_equal(a, b)
    hardest = np.argsort(-with_column["ensemble"], kind="stable")
    assert set(hardest[:5]) <= set(a.tolist())
