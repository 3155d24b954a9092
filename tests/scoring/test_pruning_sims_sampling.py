"""SIMS importance sampling: ratio-adaptive preference, strata, determinism, exact budgets."""

from __future__ import annotations

import numpy as np
import pytest

from backend.scoring.pruning._common import rank_quantile
from backend.scoring.pruning.budgets import n_to_keep
from backend.scoring.pruning.procedures import topk_prune
from backend.scoring.pruning.sims_sampling import (
    DEFAULT_SIMS_SAMPLING,
    SimsSampling,
    class_weights,
    sims_sample,
    stratified_select,
    stratum_pick,
)


def check_kept(kept: np.ndarray, n: int, n_keep: int) -> None:
    assert kept.dtype == np.int64
    assert kept.size == n_keep
    assert np.array_equal(kept, np.unique(kept))
    assert kept.min() >= 0 and kept.max() < n


def two_blobs() -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Two 10-point blobs on the unit sphere (around e1 and e2), difficulty = distance to the
    blob's mean (hard = atypical), and the members of each blob."""
    rng = np.random.default_rng(0)
    a = np.array([1.0, 0.0, 0.0]) + 0.1 * rng.normal(size=(10, 3))
    b = np.array([0.0, 1.0, 0.0]) + 0.1 * rng.normal(size=(10, 3))
    x = np.vstack([a, b])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    blobs = [np.arange(10), np.arange(10, 20)]
    difficulty = np.empty(20)
    for members in blobs:
        difficulty[members] = np.linalg.norm(x[members] - x[members].mean(axis=0), axis=1)
    return x.astype(np.float32), difficulty, blobs


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """500 digits, and a difficulty = distance to the class mean (hard = atypical)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x, y = data.data[:500].astype(np.float32), data.target[:500]
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    difficulty = np.empty(500)
    for c in range(10):
        members = y == c
        difficulty[members] = np.linalg.norm(xn[members] - xn[members].mean(axis=0), axis=1)
    return x, y, difficulty


# -- the sampling distribution's shape --------------------------------------------------------


@pytest.mark.parametrize(
    ("ratio", "lam"), [(0.0, 1.0), (0.3, 1.0), (0.7, 1.0), (0.85, 0.5), (0.94, 0.2), (0.99, 0.0333)]
)
def test_hardness_weight_default(ratio: float, lam: float) -> None:
    assert DEFAULT_SIMS_SAMPLING.hardness_weight(ratio) == pytest.approx(lam, abs=1e-4)


def test_hardness_weight_custom_shape() -> None:
    params = SimsSampling(knee=0.5, lam_end=0.4)
    assert params.hardness_weight(0.5) == 1.0
    assert params.hardness_weight(0.75) == pytest.approx(0.7)
    assert params.hardness_weight(1.0) == pytest.approx(0.4)
    assert SimsSampling(knee=1.0).hardness_weight(0.99) == 1.0
    expected = {"knee": 0.5, "lam_end": 0.4, "temperature": 0.0, "max_strata": 512, "beta": 0.0}
    as_dict = params.to_dict()
    assert {key: as_dict[key] for key in expected} == expected
    assert SimsSampling(**as_dict) == params  # round-trips as constructor arguments


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"knee": 1.5}, "knee"),
        ({"lam_end": -0.1}, "lam_end"),
        ({"temperature": -1.0}, "temperature"),
        ({"max_strata": 0}, "max_strata"),
        ({"beta": 1.0}, "beta"),
    ],
)
def test_sims_sampling_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SimsSampling(**kwargs)


def test_stratum_pick_hard_or_typical() -> None:
    members = np.array([10, 11, 12, 13])
    hardness = np.array([0.1, 0.9, 0.5, 0.3])
    distance = np.array([0.4, 0.2, 0.9, 0.0])
    rng = np.random.default_rng(0)
    assert stratum_pick(members, hardness, distance, 2, 1.0, 0.0, rng).tolist() == [11, 12]
    assert stratum_pick(members, hardness, distance, 2, 0.0, 0.0, rng).tolist() == [13, 11]
    # lam 0.5: pref = 0.5 (q_hard - q_dist) = 0.5 * (0 - 2/3, 1 - 1/3, 2/3 - 1, 1/3 - 0)
    assert stratum_pick(members, hardness, distance, 1, 0.5, 0.0, rng).tolist() == [11]
    assert stratum_pick(members, hardness, distance, 4, 0.5, 0.0, rng).tolist() == [10, 11, 12, 13]


def test_class_weights_known_values() -> None:
    difficulty = np.array([0.0, 1.0, 2.0, 3.0])
    labels = np.array([0, 0, 1, 1])
    # global quantiles 0, 1/3, 2/3, 1: class means 1/6 and 5/6
    w = class_weights(difficulty, labels, tilt=1.0, policy="proportional")
    assert w[0] == pytest.approx(2 * 1 / 3) and w[1] == pytest.approx(2 * 5 / 3)
    w = class_weights(difficulty, labels, tilt=0.0, policy="balanced")
    assert w == {0: pytest.approx(1.0), 1: pytest.approx(1.0)}


# -- stratified selection on constructed blobs ------------------------------------------------


def test_stratified_select_one_per_blob_hard_or_typical() -> None:
    x, difficulty, blobs = two_blobs()
    pool = np.arange(20)
    hardest = sorted(int(m[difficulty[m].argmax()]) for m in blobs)
    typical = sorted(int(m[difficulty[m].argmin()]) for m in blobs)
    for lam, expected in ((1.0, hardest), (0.0, typical)):
        kept = stratified_select(
            pool, 2, np.random.default_rng(1), difficulty=difficulty, embeddings=x, lam=lam,
            params=DEFAULT_SIMS_SAMPLING,
        )  # fmt: skip
        assert sorted(kept.tolist()) == expected


def test_sims_sample_preference_follows_the_ratio_on_blobs() -> None:
    x, difficulty, blobs = two_blobs()
    hardest = sorted(int(m[difficulty[m].argmax()]) for m in blobs)
    typical = sorted(int(m[difficulty[m].argmin()]) for m in blobs)
    # ratio 0.9 keeps 2 of 20, lam = 1/3: with difficulty = atypicality, keep the typical ones
    assert sims_sample(difficulty, 0.9, embeddings=x).tolist() == typical
    # the same ratio with the knee moved past it (lam = 1): keep the hardest of each blob
    params = SimsSampling(knee=0.95)
    assert sims_sample(difficulty, 0.9, embeddings=x, params=params).tolist() == hardest


def test_sims_sample_on_digits_hard_at_low_ratio_typical_at_high(digits) -> None:
    x, y, difficulty = digits
    quantile = np.empty(y.size)
    for c in range(10):
        members = y == c
        quantile[members] = rank_quantile(difficulty[members])
    low = sims_sample(difficulty, 0.5, embeddings=x, labels=y, seed=0)
    high = sims_sample(difficulty, 0.95, embeddings=x, labels=y, seed=0)
    check_kept(low, 500, 250)
    check_kept(high, 500, 25)
    assert quantile[low].mean() > 0.6  # keep-hard leaning
    assert quantile[high].mean() < 0.4  # representative
    # proportional class quotas as for every procedure
    np.testing.assert_allclose(np.bincount(y[low]), np.bincount(y) / 2, atol=1)


def test_sims_sample_without_embeddings_and_lam_one_is_keep_hard(digits) -> None:
    _, y, difficulty = digits
    for ratio in (0.3, 0.8):
        np.testing.assert_array_equal(
            sims_sample(difficulty, ratio, labels=y),
            topk_prune(difficulty, ratio, labels=y),
        )


# -- budgets, determinism, exclusion ----------------------------------------------------------


@pytest.mark.parametrize("ratio", [0.1, 0.5, 0.9, 0.97])
def test_sims_sample_exact_count_and_deterministic(digits, ratio: float) -> None:
    x, y, difficulty = digits
    kept = sims_sample(difficulty, ratio, embeddings=x, labels=y, seed=7)
    check_kept(kept, 500, n_to_keep(500, ratio))
    np.testing.assert_array_equal(
        kept, sims_sample(difficulty, ratio, embeddings=x, labels=y, seed=7)
    )


def test_sims_sample_temperature_makes_seeds_matter(digits) -> None:
    x, y, difficulty = digits
    params = SimsSampling(temperature=1.0)
    a = sims_sample(difficulty, 0.8, embeddings=x, labels=y, seed=1, params=params)
    b = sims_sample(difficulty, 0.8, embeddings=x, labels=y, seed=2, params=params)
    np.testing.assert_array_equal(
        a, sims_sample(difficulty, 0.8, embeddings=x, labels=y, seed=1, params=params)
    )
    assert not np.array_equal(a, b)


def test_sims_sample_beta_cuts_the_hardest(digits) -> None:
    x, y, difficulty = digits
    params = SimsSampling(beta=0.1)
    kept = sims_sample(difficulty, 0.5, embeddings=x, labels=y, params=params)
    check_kept(kept, 500, 250)
    hardest = np.argsort(-difficulty, kind="stable")[:50]
    assert not np.isin(hardest, kept).any()


def test_sims_sample_respects_exclude(digits) -> None:
    x, y, difficulty = digits
    exclude = np.zeros(500, dtype=bool)
    exclude[::10] = True
    kept = sims_sample(difficulty, 0.5, embeddings=x, labels=y, exclude=exclude)
    check_kept(kept, 500, 250)
    assert not exclude[kept].any()
    # excluded beyond the ratio: every other sample is kept and the count stays exact
    kept = sims_sample(difficulty, 0.05, embeddings=x, labels=y, exclude=exclude)
    check_kept(kept, 500, 475)
    assert set(np.flatnonzero(~exclude)) <= set(kept.tolist())


def test_sims_sample_class_tilt_favours_harder_classes(digits) -> None:
    x, y, difficulty = digits
    tilted = difficulty + 10.0 * (y == 3)  # class 3 is globally the hardest
    params = SimsSampling(class_tilt=1.0)
    kept = sims_sample(tilted, 0.5, embeddings=x, labels=y, params=params)
    check_kept(kept, 500, 250)
    plain = sims_sample(tilted, 0.5, embeddings=x, labels=y)
    assert (y[kept] == 3).sum() > (y[plain] == 3).sum()
    # with exclusion and tilt the excluded samples stay out
    exclude = np.zeros(500, dtype=bool)
    exclude[:40] = True
    kept = sims_sample(tilted, 0.5, embeddings=x, labels=y, params=params, exclude=exclude)
    check_kept(kept, 500, 250)
    assert not exclude[kept].any()


def test_sims_sample_input_errors() -> None:
    with pytest.raises(ValueError, match="embeddings have 3 rows but difficulty has 4"):
        sims_sample(np.ones(4), 0.5, embeddings=np.ones((3, 2)))
    with pytest.raises(ValueError, match="REMOVE"):
        sims_sample(np.ones(4), 1.0)


@pytest.mark.parametrize("class_tilt", [0.0, 1.0])
def test_sims_sample_beta_never_brings_excluded_samples_back(class_tilt: float) -> None:
    difficulty = np.arange(10.0)
    labels = np.zeros(10, dtype=np.int64)
    exclude = np.zeros(10, dtype=bool)
    exclude[[0, 1]] = True  # e.g. near-duplicates; the 8 others are exactly the budget at 0.2
    params = SimsSampling(beta=0.1, class_tilt=class_tilt)
    for seed in range(6):
        kept = sims_sample(
            difficulty, 0.2, labels=labels, exclude=exclude, seed=seed, params=params
        )
        assert kept.tolist() == list(range(2, 10)), f"seed {seed}: kept {kept.tolist()}"
