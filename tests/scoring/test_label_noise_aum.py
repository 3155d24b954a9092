"""AUM margins and the threshold-sample procedure, with a constructed train_fn."""

from __future__ import annotations

import numpy as np
import pytest

from backend.scoring.label_noise.aum import (
    aum_from_logits,
    aum_threshold,
    aum_with_threshold_samples,
    combine_threshold_runs,
    margins_from_logits,
    threshold_run_labels,
    threshold_sample_sets,
)
from backend.scoring.label_noise.pipeline import aum_threshold_runs
from backend.scoring.probes import ProbeConfig, serial_tasks


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


def test_runs_in_pieces_equal_the_one_call_procedure() -> None:
    """What a caller with workers does (labels per run, each run's AUM, combined) gives exactly
    the sequential procedure's result."""
    rng = np.random.default_rng(2)
    n, c = 90, 3
    given = rng.integers(0, c, n)
    per_run = [rng.standard_normal((4, n, c + 1)) for _ in range(2)]
    whole = aum_with_threshold_samples(given, n_classes=c, train_fn=lambda y, k, r: per_run[r], seed=5)
    sets = threshold_sample_sets(n, n_classes=c, seed=5)
    run_labels = threshold_run_labels(given, sets, n_classes=c)
    assert all((labels[s] == c).all() and (np.delete(labels, s) == np.delete(given, s)).all()
               for labels, s in zip(run_labels, sets, strict=True))
    pieces = combine_threshold_runs([aum_from_logits(z, y) for z, y in zip(per_run, run_labels, strict=True)], sets)
    for field in ("aum", "margin_to_threshold", "is_label_issue", "thresholds"):
        np.testing.assert_array_equal(getattr(pieces, field), getattr(whole, field))


def test_probe_runs_do_not_depend_on_the_order_tasks_finish() -> None:
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((3, 6)) * 3
    y = rng.integers(0, 3, 120)
    x = (centres[y] + rng.standard_normal((120, 6))).astype(np.float32)
    probe = ProbeConfig(kind="linear", seeds=(0,))

    def backwards(fn, tasks, *, shared=()):
        return reversed(list(serial_tasks(fn, tasks, shared=shared)))

    kwargs = dict(n_classes=3, probe=probe, seed=1)
    serial = aum_threshold_runs(x, y, **kwargs)
    shuffled = aum_threshold_runs(x, y, task_map=backwards, **kwargs)
    np.testing.assert_array_equal(serial.aum, shuffled.aum)
    np.testing.assert_array_equal(serial.thresholds, shuffled.thresholds)
    assert serial.aum.shape == (120,) and np.isfinite(serial.aum).all()
    assert serial.aum.mean() > 0  # separable clusters: most samples keep their label
