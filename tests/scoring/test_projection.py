"""2-D projections: PCA against its definition, UMAP fitted on a sample and the rest transformed
(deterministic with a seed, and a map as good for kNN labels as the full fit on the digits)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.neighbors import KNeighborsClassifier

from backend.scoring.projection import project_2d


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    data = load_digits()
    x = data.data[:600].astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True), data.target[:600]


def _knn_accuracy(xy: np.ndarray, labels: np.ndarray) -> float:
    """Leave-one-out 10-NN label accuracy in the 2-D map (each point's own label left out)."""
    knn = KNeighborsClassifier(n_neighbors=11).fit(xy, labels)
    idx = knn.kneighbors(xy, return_distance=False)[:, 1:]
    votes = np.array([np.bincount(labels[row], minlength=10).argmax() for row in idx])
    return float((votes == labels).mean())


def test_pca_is_the_top_two_principal_components(digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, _ = digits
    xy = project_2d(x, method="pca")
    centred = x - x.mean(axis=0)
    variances = np.linalg.svd(centred, compute_uv=False)[:2] ** 2 / len(x)
    np.testing.assert_allclose(xy.var(axis=0), variances, rtol=1e-3)
    assert xy.dtype == np.float32 and xy.shape == (600, 2)


def test_umap_fit_on_a_sample_is_deterministic_and_keeps_the_classes(digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = digits
    sampled = project_2d(x, fit_sample=300, seed=3)
    again = project_2d(x, fit_sample=300, seed=3)
    np.testing.assert_array_equal(sampled, again)
    full = project_2d(x, fit_sample=600, seed=3)
    assert sampled.shape == full.shape == (600, 2) and np.isfinite(sampled).all()
    assert _knn_accuracy(full, y) > 0.9
    assert _knn_accuracy(sampled, y) > _knn_accuracy(full, y) - 0.05  # transformed points land in their class


def test_projection_inputs_are_checked(digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, _ = digits
    with pytest.raises(ValueError, match="NaN or infinite"):
        project_2d(np.full((5, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match="fit_sample 5 is too small"):
        project_2d(x, fit_sample=5)
    with pytest.raises(ValueError, match="unknown projection method"):
        project_2d(x, method="tsne")
