"""Neural-collapse metrics: constructed geometries with known answers and a slow reference."""

from __future__ import annotations

import numpy as np
import pytest

from backend.scoring.neural_collapse import (
    SCALAR_FIELDS,
    collapse_curve,
    collapse_metrics,
    etf_distance,
    orthogonal_frame_distance,
    sample_mean_distances,
)

# --------------------------------------------------------------------------------------------
# Slow, obviously-correct reference (Papyan, Han & Donoho 2020), loops over classes and samples
# --------------------------------------------------------------------------------------------


def reference_metrics(x, y, w=None, b=None) -> dict[str, float]:
    x = np.asarray(x, np.float64)
    classes = sorted(set(y.tolist()))
    c = len(classes)
    mu_g = x.mean(axis=0)
    mu = {k: x[y == k].mean(axis=0) for k in classes}
    sigma_w = np.zeros((x.shape[1], x.shape[1]))
    for i in range(len(x)):
        r = x[i] - mu[y[i]]
        sigma_w += np.outer(r, r)
    sigma_w /= len(x)
    sigma_b = sum(np.outer(mu[k] - mu_g, mu[k] - mu_g) for k in classes) / c
    out = {"nc1": np.trace(sigma_w @ np.linalg.pinv(sigma_b, rcond=1e-10, hermitian=True)) / c}
    centred = [mu[k] - mu_g for k in classes]

    def geometry(vectors, suffix):
        norms = [np.linalg.norm(v) for v in vectors]
        cosines = [
            vectors[i] @ vectors[j] / (norms[i] * norms[j])
            for i in range(c)
            for j in range(i + 1, c)
        ]
        out["equinorm" + suffix] = np.std(norms) / np.mean(norms)
        out["equiangularity" + suffix] = np.std(cosines)
        out["max_angle" + suffix] = np.mean([abs(cs + 1 / (c - 1)) for cs in cosines])
        gram = np.array(
            [[u @ v / (np.linalg.norm(u) * np.linalg.norm(v)) for v in vectors] for u in vectors]
        )
        etf = np.eye(c) - 1.0 / c
        out["etf_distance" + suffix] = np.linalg.norm(
            gram / np.linalg.norm(gram) - etf / np.linalg.norm(etf)
        )

    geometry(centred, "")
    raw = [mu[k] for k in classes]
    gram_raw = np.array(
        [[u @ v / (np.linalg.norm(u) * np.linalg.norm(v)) for v in raw] for u in raw]
    )
    out["of_distance"] = np.linalg.norm(
        gram_raw / np.linalg.norm(gram_raw) - np.eye(c) / np.sqrt(c)
    )
    if w is not None:
        w_c = w - w.mean(axis=0)
        geometry([w_c[k] for k in classes], "_w")
        m_mat = np.stack(centred)
        w_mat = np.stack([w_c[k] for k in classes])
        out["nc3"] = (
            np.linalg.norm(w_mat / np.linalg.norm(w_mat) - m_mat / np.linalg.norm(m_mat)) ** 2
        )
        differ = 0
        for i in range(len(x)):
            classifier = int(np.argmax(w @ x[i] + b))
            ncc = min(classes, key=lambda k: np.linalg.norm(x[i] - mu[k]))
            differ += classifier != ncc
        out["nc4"] = differ / len(x)
    return out


def simplex_etf(c: int, d: int) -> np.ndarray:
    """(c, d) rows forming a simplex ETF in R^d: a centred orthonormal basis, rotated."""
    m = np.eye(c, d) - np.eye(c, d).mean(axis=0)
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(d, d)))
    return m @ q


@pytest.fixture
def tiny() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 3])
    x = rng.normal(size=(len(y), 6)) + 2 * rng.normal(size=(4, 6))[y]
    return x.astype(np.float32), y, rng.normal(size=(4, 6)), rng.normal(size=4)


def test_fast_agrees_with_reference(tiny) -> None:
    x, y, w, b = tiny
    fast = collapse_metrics(x, y, weights=w, biases=b)
    slow = reference_metrics(x, y, w, b)
    for name, value in slow.items():
        assert getattr(fast, name) == pytest.approx(value, rel=1e-9, abs=1e-12), name
    counts = np.bincount(y)
    assert np.sum(counts / len(y) * fast.per_class["nc1"]) == pytest.approx(fast.nc1, rel=1e-9)


def test_perfect_simplex_etf_is_fully_collapsed() -> None:
    c, d = 5, 8
    m = simplex_etf(c, d)
    y = np.repeat(np.arange(c), 7)
    shift = np.full(d, 2.5)  # translated: the metrics centre on the global mean ...
    x = 4.0 * m[y] + shift
    w = 0.3 * m  # ... and the classifier's bias undoes the shift
    metrics = collapse_metrics(x, y, weights=w, biases=-w @ shift)
    for name in (
        "nc1",
        "equinorm",
        "equiangularity",
        "max_angle",
        "etf_distance",
        "nc3",
        "nc4",
        "equinorm_w",
        "equiangularity_w",
        "max_angle_w",
        "etf_distance_w",
    ):
        assert getattr(metrics, name) == pytest.approx(0.0, abs=1e-10), name
    assert metrics.imbalance_ratio == 1.0
    np.testing.assert_allclose(metrics.per_class["w_mean_cos"], 1.0)
    np.testing.assert_allclose(metrics.per_class["mean_cos_to_others"], -1 / (c - 1))


def test_random_features_are_far_from_collapse() -> None:
    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(5), 40)
    x = rng.normal(size=(200, 16))
    metrics = collapse_metrics(x, y, weights=rng.normal(size=(5, 16)))
    assert metrics.nc1 > 1.0
    assert metrics.etf_distance > 0.3 and metrics.etf_distance_w > 0.3
    assert metrics.nc3 > 0.5 and metrics.nc4 > 0.3 and metrics.max_angle > 0.1


def test_orthogonal_frame_for_imbalanced_classes() -> None:
    counts = np.array([40, 20, 10, 5])
    y = np.repeat(np.arange(4), counts)
    lengths = np.sqrt(counts)  # Dang et al.: lengths grow with class size
    means = np.eye(4, 6) * lengths[:, None]
    metrics = collapse_metrics(means[y], y, weights=means)
    assert metrics.of_distance == pytest.approx(0.0, abs=1e-12)
    assert metrics.of_distance_w == pytest.approx(0.0, abs=1e-12)
    assert metrics.etf_distance > 0.1
    assert metrics.imbalance_ratio == 8.0
    assert orthogonal_frame_distance(np.eye(3)) == pytest.approx(0.0)
    assert etf_distance(np.eye(3) - 1 / 3) == pytest.approx(0.0, abs=1e-12)
    assert etf_distance(np.eye(3)) > 0.5 and orthogonal_frame_distance(np.eye(3) - 1 / 3) > 0.5


def test_invariant_to_global_scaling(tiny) -> None:
    x, y, w, b = tiny
    base = collapse_metrics(x, y, weights=w, biases=b)
    scaled = collapse_metrics(x * 1e3, y, weights=w * 7.0, biases=b * 7.0)
    for name in SCALAR_FIELDS:
        assert getattr(scaled, name) == pytest.approx(getattr(base, name), rel=1e-7), name


def test_missing_and_single_sample_classes(tiny) -> None:
    x, y, w, b = tiny
    y_gap = np.where(y == 3, 4, y)  # class 3 empty, class 4 present
    metrics = collapse_metrics(x, y_gap, n_classes=5)
    assert metrics.missing_classes == [3]
    assert np.isnan(metrics.per_class["within_trace"][3])
    assert np.isnan(metrics.nc3) and np.isnan(metrics.nc4)
    assert metrics.nc1 == pytest.approx(collapse_metrics(x, y).nc1)
    y_one = y.copy()
    y_one[0] = 4  # a class with a single sample: zero within-class spread
    one = collapse_metrics(x, y_one)
    assert one.per_class["within_trace"][4] == 0.0 and np.isfinite(one.nc1)
    with pytest.raises(ValueError, match=">= 2 classes"):
        collapse_metrics(x, np.zeros(len(y), np.int64))
    with pytest.raises(ValueError, match="labels must lie"):
        collapse_metrics(x, y, n_classes=3)
    with pytest.raises(ValueError, match="weights must be"):
        collapse_metrics(x, y, weights=np.zeros((4, 5)))


def test_sample_mean_distances_against_loops(tiny) -> None:
    x, y, _, _ = tiny
    out = sample_mean_distances(x, y)
    mu = {k: x[y == k].astype(np.float64).mean(0) for k in range(4)}
    for i in range(len(y)):
        own = np.linalg.norm(x[i] - mu[y[i]])
        others = {k: np.linalg.norm(x[i] - mu[k]) for k in range(4) if k != y[i]}
        best = min(others, key=others.get)
        assert out.own[i] == pytest.approx(own, rel=1e-9)
        assert out.nearest_other[i] == pytest.approx(others[best], rel=1e-7)
        assert out.nearest_other_class[i] == best
        assert out.ratio[i] == pytest.approx(own / others[best], rel=1e-7)


def test_collapse_curve_matches_per_epoch_metrics(tiny) -> None:
    x, y, w, b = tiny
    feats = np.stack([x, 0.5 * x, x + 1.0])
    curve = collapse_curve(feats, y, weights=np.stack([w] * 3), biases=np.stack([b] * 3))
    assert set(curve) == set(SCALAR_FIELDS) and curve["nc1"].shape == (3,)
    single = collapse_metrics(x, y, weights=w, biases=b)
    np.testing.assert_allclose(curve["nc1"], single.nc1, rtol=1e-6)
    assert curve["nc4"][0] == pytest.approx(single.nc4)


def test_to_dict_is_json_ready(tiny) -> None:
    import json

    x, y, _, _ = tiny
    data = collapse_metrics(x, y).to_dict()
    assert data["nc3"] is None and data["nc4"] is None and data["nc1"] > 0
    json.dumps(data)


def test_class_means_in_blocks_match_one_product(monkeypatch: pytest.MonkeyPatch) -> None:
    from backend.scoring import neural_collapse

    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((500, 7)).astype(np.float32), rng.integers(0, 5, 500)
    whole, counts = neural_collapse.class_means(x, y, n_classes=6)
    monkeypatch.setattr(neural_collapse, "CHUNK_ROWS", 64)
    blocked, counts_blocked = neural_collapse.class_means(x, y, n_classes=6)
    np.testing.assert_allclose(blocked, whole, rtol=1e-12, equal_nan=True)
    np.testing.assert_array_equal(counts_blocked, counts)
