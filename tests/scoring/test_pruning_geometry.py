"""Embedding-geometry pruning scores on constructed point sets with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from backend.scoring.pruning.geometry_scores import (
    UNIQUENESS_WEIGHTS,
    class_median_distance,
    default_n_clusters,
    kmeans,
    knn_density,
    knn_uniqueness,
    moderate_score,
    prototype_distance,
    semdedup,
    spherical_clusters,
)


def unit(deg: float) -> np.ndarray:
    return np.array([math.cos(math.radians(deg)), math.sin(math.radians(deg))])


def two_clusters_and_outlier(seed: int = 0) -> np.ndarray:
    """20 points near e1, 20 near e2 (3-D), and one outlier at index 40 along e3."""
    rng = np.random.default_rng(seed)
    a = np.array([1.0, 0.0, 0.0]) + 0.02 * rng.normal(size=(20, 3))
    b = np.array([0.0, 1.0, 0.0]) + 0.02 * rng.normal(size=(20, 3))
    outlier = np.array([[0.6, 0.0, 0.8]])
    return np.vstack([a, b, outlier]).astype(np.float32)


# -- k-means prototypes -----------------------------------------------------------------------


@pytest.mark.parametrize(("n", "k"), [(1, 2), (4, 2), (100, 10), (1797, 42), (10**7, 1000)])
def test_default_n_clusters(n: int, k: int) -> None:
    assert default_n_clusters(n) == k


def test_kmeans_is_seeded_and_caps_k() -> None:
    x = two_clusters_and_outlier()
    a1, c1 = kmeans(x, 3, seed=4)
    a2, c2 = kmeans(x, 3, seed=4)
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(c1, c2)
    assign, centroids = kmeans(x[:3], 10)
    assert centroids.shape == (3, 3) and sorted(assign.tolist()) == [0, 1, 2]


def test_prototype_distance_outlier_is_farthest() -> None:
    x = two_clusters_and_outlier()
    dist = prototype_distance(x, n_clusters=2)
    assert dist.argmax() == 40
    assert dist[40] > 0.1 > dist[:40].max()
    assert (dist >= -1e-6).all() and (dist <= 2.0).all()


def test_prototype_distance_zero_on_identical_points_and_scale_free() -> None:
    x = np.vstack([np.tile([3.0, 0.0], (5, 1)), np.tile([0.0, 0.5], (5, 1))])
    np.testing.assert_allclose(prototype_distance(x, n_clusters=2), 0.0, atol=1e-6)
    y = two_clusters_and_outlier()
    scale = np.linspace(0.5, 4.0, y.shape[0])[:, None].astype(np.float32)
    np.testing.assert_allclose(
        prototype_distance(y * scale, n_clusters=2), prototype_distance(y, n_clusters=2),
        atol=1e-5,
    )  # fmt: skip


# -- Moderate ---------------------------------------------------------------------------------


def test_class_median_distance_known_values() -> None:
    x = np.array([[0, 0], [1, 0], [5, 0], [10, 10], [10, 13], [14, 10]], dtype=np.float32)
    y = np.array([0, 0, 0, 1, 1, 1])
    # class 0 median (1, 0); class 1 median (10, 10)
    np.testing.assert_allclose(class_median_distance(x, y), [1, 0, 4, 0, 3, 4])


def test_moderate_score_is_distance_from_the_within_class_median_rank() -> None:
    # class 0: 5 points on a line, median (2, 0), distances 2, 1, 0, 1.5, 3
    x = np.array(
        [[0, 0], [1, 0], [2, 0], [3.5, 0], [5, 0], [0, 9], [0, 10], [0, 12]], dtype=np.float32
    )
    y = np.array([0, 0, 0, 0, 0, 1, 1, 1])
    # class 0 quantiles 0.75, 0.25, 0, 0.5, 1; class 1 (distances 1, 0, 2): 0.5, 0, 1
    np.testing.assert_allclose(moderate_score(x, y), [0.25, 0.25, 0.5, 0.0, 0.5, 0.0, 0.5, 0.5])


# -- kNN density / uniqueness -----------------------------------------------------------------


def test_knn_density_higher_in_a_dense_cluster() -> None:
    rng = np.random.default_rng(5)
    dense = unit(20.0) + 0.01 * rng.normal(size=(15, 2))
    sparse = np.stack([unit(a) for a in (100, 150, 200, 250, 300)])
    x = np.vstack([dense, sparse]).astype(np.float32)
    density = knn_density(x, k=3)
    assert density[:15].min() > 0.99
    assert density[15:].max() < 0.5
    # the sparse points' 3 nearest are their ring neighbours: known mean cosine
    ring = sparse / np.linalg.norm(sparse, axis=1, keepdims=True)
    assert density[15 + 2] == pytest.approx(
        np.mean(sorted(ring[2] @ np.vstack([ring[[0, 1, 3, 4]], dense]).T, reverse=True)[:3]),
        abs=1e-5,
    )


def test_knn_uniqueness_known_values() -> None:
    # 0, 90, 180 and 270 degrees: every point has cosines 0, 0, -1 to the others
    x = np.stack([unit(a) for a in (0, 90, 180, 270)]).astype(np.float32)
    w = np.asarray(UNIQUENESS_WEIGHTS)
    np.testing.assert_allclose(knn_uniqueness(x), w @ [1.0, 1.0, 2.0], atol=1e-6)
    # four copies of one point: uniqueness 0
    np.testing.assert_allclose(knn_uniqueness(np.ones((4, 3), np.float32)), 0.0, atol=1e-6)
    # two points: one neighbour, weight renormalised to 1
    two = np.stack([unit(0), unit(60)]).astype(np.float32)
    np.testing.assert_allclose(knn_uniqueness(two), [0.5, 0.5], atol=1e-6)


def test_knn_scores_need_two_samples() -> None:
    with pytest.raises(ValueError, match="at least 2 samples"):
        knn_density(np.ones((1, 3)))
    with pytest.raises(ValueError, match="at least 2 samples"):
        knn_uniqueness(np.ones((1, 3)))
    with pytest.raises(ValueError, match="non-empty \\(N, D\\)"):
        knn_density(np.ones(5))


# -- SemDeDup ---------------------------------------------------------------------------------


def test_semdedup_flags_planted_near_duplicates_and_keeps_one_per_group() -> None:
    rng = np.random.default_rng(7)
    base = rng.normal(size=(150, 48))
    groups = {3: 1, 17: 2, 40: 1, 77: 3, 120: 1}  # original index -> number of planted copies
    rows = [base]
    members: dict[int, list[int]] = {}
    next_row = base.shape[0]
    for original, copies in groups.items():
        noisy = base[original] + 1e-3 * rng.normal(size=(copies, 48))
        rows.append(noisy)
        members[original] = [original, *range(next_row, next_row + copies)]
        next_row += copies
    x = np.vstack(rows).astype(np.float32)

    dups = semdedup(x, threshold=0.99, seed=0)
    assert dups.is_duplicate.sum() == sum(groups.values())
    planted = sorted(i for group in members.values() for i in group)
    assert set(np.flatnonzero(dups.is_duplicate)) <= set(planted)
    for group in members.values():
        kept = [i for i in group if not dups.is_duplicate[i]]
        assert len(kept) == 1
        assert dups.duplicate_of[kept[0]] == -1
        for i in group:
            if i != kept[0]:
                assert dups.duplicate_of[i] == kept[0]
        assert len(set(dups.cluster[group].tolist())) == 1
    assert (dups.duplicate_of[~dups.is_duplicate] == -1).all()


def test_semdedup_keep_farthest_or_nearest_and_chains() -> None:
    # one cluster; the centroid direction is near 40 degrees, so within the group at 0, 2 and 4
    # degrees the 0-degree point is farthest from the centroid and the 4-degree one nearest
    x = np.stack([unit(a) for a in (0.0, 2.0, 4.0, 60.0, 100.0)]).astype(np.float32)
    threshold = math.cos(math.radians(3.0))  # 0~2 and 2~4 are duplicates, 0~4 are not
    far = semdedup(x, threshold=threshold, n_clusters=1)
    np.testing.assert_array_equal(far.is_duplicate, [False, True, True, False, False])
    # 4 is close only to 2, an earlier duplicate: dropped too, and traced back to 0
    np.testing.assert_array_equal(far.duplicate_of, [-1, 0, 0, -1, -1])
    near = semdedup(x, threshold=threshold, n_clusters=1, keep="nearest")
    np.testing.assert_array_equal(near.is_duplicate, [True, True, False, False, False])
    np.testing.assert_array_equal(near.duplicate_of, [2, 2, -1, -1, -1])


def test_semdedup_threshold_one_finds_nothing_and_errors() -> None:
    x = np.ones((6, 4), np.float32)
    assert semdedup(x, threshold=1.0, n_clusters=1).is_duplicate.sum() == 0
    assert semdedup(x, threshold=0.5, n_clusters=1).is_duplicate.sum() == 5
    with pytest.raises(ValueError, match="keep must be 'farthest' or 'nearest'"):
        semdedup(x, keep="first")
    with pytest.raises(ValueError, match="cosine similarity in \\[-1, 1\\]"):
        semdedup(x, threshold=1.5)


def test_prototypes_and_semdedup_accept_a_shared_fit() -> None:
    from sklearn.datasets import load_digits

    x = load_digits().data[:400].astype(np.float32)
    fit = spherical_clusters(x, 12, seed=3)
    assert fit.assign.shape == (400,) and fit.centroids.shape == (12, 64)
    np.testing.assert_allclose(np.linalg.norm(fit.centroids, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(prototype_distance(x, clusters=fit), prototype_distance(x, n_clusters=12, seed=3))
    shared = semdedup(x, threshold=0.98, clusters=fit)
    np.testing.assert_array_equal(shared.is_duplicate, semdedup(x, threshold=0.98, n_clusters=12, seed=3).is_duplicate)
    np.testing.assert_array_equal(shared.cluster, fit.assign)
    with pytest.raises(ValueError, match="clusters assign 400 rows, the embeddings have 399"):
        prototype_distance(x[:399], clusters=fit)
