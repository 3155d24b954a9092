"""What a subset costs, on real digits: a random fifth loses accuracy and distillation wins most
of it back; a subset missing half the classes loses those classes' recall; arms are paired."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from backend.jobs.evaluate_job import ARMS as SHOWN_ARMS
from backend.scoring import subset_evaluation
from backend.scoring.probes import ProbeConfig
from backend.scoring.subset_evaluation import ARMS, evaluate_subset, same_steps

N = 600


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    data = load_digits()
    return (data.data[:N] / 16.0).astype(np.float32), data.target[:N].astype(np.int64)


def test_a_random_fifth_costs_accuracy_and_distillation_recovers_it(digits) -> None:
    x, y = digits
    kept = np.zeros(N, bool)
    kept[np.random.default_rng(0).choice(N, N // 5, replace=False)] = True
    result = evaluate_subset(x, y, kept, n_classes=10, config=ProbeConfig(device="cpu"), seed=0)
    assert set(result.accuracy) == set(ARMS) and tuple(SHOWN_ARMS) == ARMS
    assert result.kept_fraction == pytest.approx(0.2) and 0.5 < result.kd_weight < 1
    assert result.mean("full") > 0.93
    assert result.mean("subset") < result.mean("full") - 0.01
    gain = result.compare("subset_kd", "subset")
    assert gain["difference"] > 1.0 and gain["sign_test_p"] < 0.05, gain
    # every sample is tested exactly once, so the pooled recall re-adds to the mean accuracy
    counts = np.bincount(y, minlength=10)
    for arm in ARMS:
        assert (result.recall[arm] * counts).sum() / N == pytest.approx(result.correct[arm].mean())
    again = evaluate_subset(x, y, kept, n_classes=10, config=ProbeConfig(device="cpu"), seed=0)
    for arm in ARMS:
        np.testing.assert_array_equal(result.correct[arm], again.correct[arm])


def test_a_subset_without_half_the_classes_loses_them(digits) -> None:
    """Keep every 0-4 and about one in ten of 5-9: against all samples, classes 5-9 lose far more
    recall than 0-4, and distillation from the full-data teacher gives some of it back."""
    x, y = digits
    rng = np.random.default_rng(1)
    kept = (y < 5) | (rng.random(N) < 0.1)
    result = evaluate_subset(x, y, kept, n_classes=10, config=ProbeConfig(kind="linear", device="cpu"), seed=0)
    drop = result.recall["full"] - result.recall["subset"]
    assert drop[5:].mean() > drop[:5].mean() + 0.02, drop
    assert result.recall["subset_kd"][5:].mean() > result.recall["subset"][5:].mean()


def test_bad_subsets_are_refused(digits) -> None:
    x, y = digits
    config = ProbeConfig(kind="linear", epochs=2, device="cpu")
    for kept in (np.zeros(N, bool), np.ones(N, bool)):
        with pytest.raises(ValueError, match="some but not all"):
            evaluate_subset(x, y, kept, n_classes=10, config=config)
    with pytest.raises(ValueError, match="bool mask"):
        evaluate_subset(x, y, np.ones(N - 1, bool), n_classes=10, config=config)
    one = np.zeros(N, bool)
    one[0] = True
    with pytest.raises(ValueError, match="no kept sample"):
        evaluate_subset(x, y, one, n_classes=10, config=config)


def test_small_subsets_get_as_many_steps_as_the_full_probe() -> None:
    config = ProbeConfig(epochs=30, batch_size=100)
    assert same_steps(config, 1000, 1000).epochs == 30
    assert same_steps(config, 250, 1000).epochs == 100  # 3 batches an epoch, 300 steps
    assert same_steps(config, 10, 1000).epochs == 300  # one batch an epoch
    assert same_steps(config, 10, 10_000).epochs == 600  # 3,000 steps, capped at 20x the epochs
    assert same_steps(config, 5000, 1000).epochs == 30  # never fewer than the recipe's epochs


def test_no_probe_sees_its_held_out_fold(digits, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every probe trains on its fold's training rows only: the teacher on all of them, the subset
    arms on the kept ones, the random arms on as many per class as the subset keeps there."""
    x, y = digits
    kept = np.random.default_rng(2).random(N) < 0.3
    calls = []
    real = subset_evaluation.fit_predict

    def spy(x_, y_, train_rows, predict_rows, **kwargs):
        calls.append((train_rows.copy(), [rows.copy() for rows in predict_rows], kwargs.get("teacher_logits")))
        return real(x_, y_, train_rows, predict_rows, **kwargs)

    monkeypatch.setattr(subset_evaluation, "fit_predict", spy)
    evaluate_subset(x, y, kept, n_classes=10, config=ProbeConfig(kind="linear", epochs=2, device="cpu"), n_folds=3)
    assert len(calls) == 3 * 5
    for fold in range(3):
        full, subset, subset_kd, random, random_kd = calls[5 * fold : 5 * fold + 5]
        test = full[1][0]
        train = full[0]
        assert np.intersect1d(train, test).size == 0 and train.size + test.size == N
        for train_rows, predict_rows, _ in (subset, subset_kd, random, random_kd):
            assert np.intersect1d(train_rows, test).size == 0 and np.isin(train_rows, train).all()
            np.testing.assert_array_equal(predict_rows[0], test)
        np.testing.assert_array_equal(subset[0], train[kept[train]])
        np.testing.assert_array_equal(np.bincount(y[random[0]], minlength=10), np.bincount(y[subset[0]], minlength=10))
        assert full[2] is None and subset[2] is None and random[2] is None
        teacher = subset_kd[2]
        assert teacher is random_kd[2] and not teacher[test].any()  # no teacher output for held-out rows
