"""Proxy probes: shapes, determinism, accuracy on digits, validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from backend.scoring.probes import (
    ProbeConfig,
    TrainingDynamics,
    cross_fit_probs,
    out_of_fold_probs,
    out_of_fold_probs_by_seed,
    predict_logits,
    softmax,
    train_dynamics,
)

torch.set_num_threads(1)

FAST = ProbeConfig(kind="mlp", hidden=16, epochs=4, n_folds=3, seeds=(0, 1), device="cpu")


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    return (x / 16).astype(np.float32), y.astype(np.int64)


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    x = rng.normal(size=(60, 5)).astype(np.float32) + 3 * np.eye(3, 5, dtype=np.float32)[y]
    return x, y


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_train_dynamics_shapes_and_determinism(blobs, kind: str) -> None:
    x, y = blobs
    cfg = ProbeConfig(kind=kind, hidden=8, epochs=3, device="cpu")
    first = train_dynamics(x, y, n_classes=3, config=cfg, seed=7, record_features=True)
    again = train_dynamics(x, y, n_classes=3, config=cfg, seed=7, record_features=True)
    other = train_dynamics(x, y, n_classes=3, config=cfg, seed=8)
    width = 5 if kind == "linear" else 8
    assert isinstance(first, TrainingDynamics)
    assert first.logits.shape == (3, 60, 3) and first.logits.dtype == np.float32
    assert first.features is not None and first.features.shape == (3, 60, width)
    assert first.weights.shape == (3, 3, width) and first.biases.shape == (3, 3)
    assert first.train_accuracy.shape == (3,)
    assert other.features is None
    for name in ("logits", "features", "weights", "biases", "train_accuracy"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert not np.array_equal(first.logits, other.logits)
    # the recorded last layer reproduces the recorded logits from the recorded features
    rebuilt = first.features[-1] @ first.weights[-1].T + first.biases[-1]
    np.testing.assert_allclose(rebuilt, first.logits[-1], atol=1e-4)
    np.testing.assert_allclose(predict_logits(first, x), first.logits[-1], atol=1e-4)


def test_linear_features_are_standardized_inputs(blobs) -> None:
    x, y = blobs
    dyn = train_dynamics(
        x, y, n_classes=3, config=ProbeConfig(kind="linear", epochs=2), seed=0, record_features=True
    )
    np.testing.assert_allclose(dyn.features[0], dyn.features[1])
    np.testing.assert_allclose(dyn.features[0].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(dyn.features[0].std(axis=0), 1, atol=1e-4)


def test_last_epoch_fits_training_data(digits) -> None:
    x, y = digits
    dyn = train_dynamics(x, y, n_classes=10, config=ProbeConfig(kind="mlp", epochs=15), seed=0)
    assert dyn.train_accuracy[-1] > 0.98
    assert (dyn.logits[-1].argmax(axis=1) == y).mean() == pytest.approx(dyn.train_accuracy[-1])


def test_extra_fake_class_and_sample_weight(blobs) -> None:
    x, y = blobs
    y_fake = y.copy()
    y_fake[::10] = 3  # AUM threshold samples
    w = np.linspace(0.5, 2.0, len(y))
    dyn = train_dynamics(x, y_fake, n_classes=4, config=FAST, seed=0, sample_weight=w)
    assert dyn.logits.shape == (4, 60, 4) and dyn.weights.shape[1] == 4
    with pytest.raises(ValueError, match="sample_weight"):
        train_dynamics(x, y, n_classes=3, config=FAST, seed=0, sample_weight=-w)


def test_cross_fit_probs_shape_and_determinism(blobs) -> None:
    x, y = blobs
    probs = cross_fit_probs(x, y, n_classes=3, config=FAST, seed=3)
    assert probs.shape == (60, 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(probs, cross_fit_probs(x, y, n_classes=3, config=FAST, seed=3))
    by_seed = out_of_fold_probs_by_seed(x, y, n_classes=3, config=FAST)
    assert by_seed.shape == (2, 60, 3)
    np.testing.assert_allclose(
        out_of_fold_probs(x, y, n_classes=3, config=FAST), by_seed.mean(0), atol=1e-6
    )


def test_cross_fit_handles_tiny_classes(blobs) -> None:
    x, y = blobs
    y_small = y.copy()
    y_small[0] = 3  # a class with one member (fewer than folds)
    probs = cross_fit_probs(x, y_small, n_classes=4, config=FAST, seed=0)
    assert probs.shape == (60, 4) and np.isfinite(probs).all()
    # no class reaches n_folds members: unstratified fallback
    probs = cross_fit_probs(x[:4], np.array([0, 1, 2, 3]), n_classes=4, config=FAST, seed=0)
    assert probs.shape == (4, 4)


@pytest.mark.parametrize(("kind", "floor"), [("linear", 0.9), ("mlp", 0.93)])
def test_out_of_fold_accuracy_on_digits(digits, kind: str, floor: float) -> None:
    x, y = digits
    cfg = ProbeConfig(kind=kind, epochs=15, seeds=(0,), device="cpu")
    probs = out_of_fold_probs(x, y, n_classes=10, config=cfg)
    assert (probs.argmax(axis=1) == y).mean() > floor


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (np.array([0, 1, 2, 5]), "labels must lie"),
        (np.array([0, 1, -1, 2]), "labels must lie"),
        (np.array([0.0, 1.0, 2.0, 1.0]), "integers"),
        (np.array([0, 1, 2]), "shape"),
    ],
)
def test_invalid_labels_raise(labels: np.ndarray, match: str) -> None:
    x = np.zeros((4, 2), np.float32)
    with pytest.raises(ValueError, match=match):
        train_dynamics(x, labels, n_classes=3, config=FAST, seed=0)
    with pytest.raises(ValueError, match=match):
        cross_fit_probs(x, labels, n_classes=3, config=FAST, seed=0)


def test_invalid_inputs_raise() -> None:
    with pytest.raises(ValueError, match="kind"):
        ProbeConfig(kind="svm")
    with pytest.raises(ValueError, match="n_folds"):
        ProbeConfig(n_folds=1)
    x = np.array([[0.0, np.nan], [1.0, 2.0]], np.float32)
    with pytest.raises(ValueError, match="NaN"):
        train_dynamics(x, np.array([0, 1]), n_classes=2, config=FAST, seed=0)


def test_softmax_matches_torch() -> None:
    z = np.random.default_rng(0).normal(size=(2, 5, 4)) * 50
    np.testing.assert_allclose(
        softmax(z), torch.softmax(torch.from_numpy(z), -1).numpy(), atol=1e-6
    )


def test_preallocated_outputs(blobs, tmp_path) -> None:
    x, y = blobs
    full = train_dynamics(x, y, n_classes=3, config=FAST, seed=1, record_features=True)
    logits_out = np.lib.format.open_memmap(
        tmp_path / "logits.npy", mode="w+", dtype=np.float16, shape=(4, 60, 3)
    )
    features_out = np.empty((4, 60, 16), np.float32)
    dyn = train_dynamics(
        x,
        y,
        n_classes=3,
        config=FAST,
        seed=1,
        record_features=True,
        logits_out=logits_out,
        features_out=features_out,
    )
    assert dyn.logits is logits_out and dyn.features is features_out
    np.testing.assert_allclose(dyn.logits, full.logits, atol=1e-2, rtol=1e-3)
    np.testing.assert_array_equal(dyn.features, full.features)
    with pytest.raises(ValueError, match="logits_out"):
        train_dynamics(x, y, n_classes=3, config=FAST, seed=1, logits_out=np.empty((1, 60, 3)))


def test_cpu_threads_are_restored(blobs) -> None:
    x, y = blobs
    before = torch.get_num_threads()
    cfg = ProbeConfig(kind="linear", epochs=1, cpu_threads=2, device="cpu")
    a = train_dynamics(x, y, n_classes=3, config=cfg, seed=0)
    assert torch.get_num_threads() == before
    b = train_dynamics(x, y, n_classes=3, config=ProbeConfig(kind="linear", epochs=1), seed=0)
    np.testing.assert_allclose(a.logits, b.logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_training_without_recorded_logits_is_identical(blobs, kind: str) -> None:
    x, y = blobs
    config = ProbeConfig(kind=kind, epochs=3, hidden=16, device="cpu")
    full = train_dynamics(x, y, n_classes=int(y.max()) + 1, config=config, seed=5)
    lean = train_dynamics(x, y, n_classes=int(y.max()) + 1, config=config, seed=5, record_logits=False)
    assert lean.logits.shape == (0, x.shape[0], int(y.max()) + 1) and np.isnan(lean.train_accuracy).all()
    np.testing.assert_array_equal(lean.weights, full.weights)
    np.testing.assert_array_equal(predict_logits(lean, x[:20]), predict_logits(full, x[:20]))


def test_blocked_column_std_matches_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    from backend.scoring import probes

    rng = np.random.default_rng(2)
    x = (rng.standard_normal((1000, 9)) * 3 + 5).astype(np.float32)
    mean = x.mean(axis=0, dtype=np.float64)
    np.testing.assert_array_equal(probes._column_std(x, mean), x.std(axis=0, dtype=np.float64))
    monkeypatch.setattr(probes, "STD_BLOCK_ROWS", 128)
    np.testing.assert_allclose(probes._column_std(x, mean), x.std(axis=0, dtype=np.float64), rtol=1e-12)
