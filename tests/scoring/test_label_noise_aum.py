"""AUM margins and the threshold-sample procedure, with a constructed train_fn."""

from __future__ import annotations

import numpy as np
import pytest

from backend.scoring.label_noise.aum import (
    aum_from_logits,
    aum_threshold,
    aum_with_threshold_samples,
    margins_from_logits,
    threshold_sample_sets,
)


def test_aum_matches_a_loop() -> None:
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((4, 12, 5))
    labels = rng.integers(0, 5, 12)
    ref = np.zeros(12)
    for i in range(12):
        for e in range(4):
            others = [logits[e, i, c] for c in range(5) if c != labels[i]]
            ref[i] += (logits[e, i, labels[i]] - max(others)) / 4
    np.testing.assert_allclose(aum_from_logits(logits, labels), ref)
    assert margins_from_logits(logits[0], labels).shape == (1, 12)


def test_threshold_sets_are_disjoint_and_sized() -> None:
    sets = threshold_sample_sets(110, n_classes=10, n_runs=2, seed=3)
    assert [s.size for s in sets] == [10, 10]
    assert not set(sets[0]) & set(sets[1])
    assert aum_threshold(np.arange(101.0), percentile=99) == pytest.approx(99.0)


def test_procedure_flags_the_mislabelled_samples() -> None:
    rng = np.random.default_rng(1)
    n, c = 220, 4
    true = rng.integers(0, c, n)
    given = true.copy()
    wrong = rng.choice(n, 15, replace=False)
    given[wrong] = (true[wrong] + 1) % c
    calls = []

    def train_fn(labels: np.ndarray, n_out: int, run: int) -> np.ndarray:
        calls.append((n_out, run, int((labels == c).sum())))
        logits = np.zeros((3, n, n_out))
        logits[:, np.arange(n), true] = 2.0  # the network believes the true class
        logits[:, :, c] = 0.5  # the fake class gets a little mass everywhere
        return logits

    result = aum_with_threshold_samples(given, n_classes=c, train_fn=train_fn, seed=0)
    assert calls == [(c + 1, 0, n // (c + 1)), (c + 1, 1, n // (c + 1))]
    # clean: 2 - 0.5 = 1.5; mislabelled: 0 - 2 = -2; threshold samples: 0.5 - 2 = -1.5
    np.testing.assert_allclose(result.thresholds, -1.5)
    np.testing.assert_array_equal(np.flatnonzero(result.is_label_issue), np.sort(wrong))
    np.testing.assert_allclose(result.aum[given == true], 1.5)


def test_bad_train_fn_output() -> None:
    with pytest.raises(ValueError, match="train_fn"):
        aum_with_threshold_samples(
            np.zeros(20, int), n_classes=2, train_fn=lambda y, k, r: np.zeros((2, 20, 2))
        )
