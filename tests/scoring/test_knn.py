"""Blocked exact kNN against a brute-force reference; the ANN path against exact search."""

from __future__ import annotations

import numpy as np
import pytest

from backend.scoring.knn import knn_search


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _brute(x: np.ndarray, q: np.ndarray, k: int, self_rows: np.ndarray | None):
    sims = (q.astype(np.float64) @ x.T.astype(np.float64)).astype(np.float32)
    if self_rows is not None:
        sims[np.arange(q.shape[0]), self_rows] = -np.inf
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(sims, order, axis=1)


@pytest.mark.parametrize("batch_size", [1, 7, 4096])
def test_exact_matches_brute_force(batch_size: int) -> None:
    x = _unit(np.random.default_rng(0), 150, 12)
    idx, sims = knn_search(x, 5, batch_size=batch_size, method="exact")
    ref_idx, ref_sims = _brute(x, x, 5, np.arange(150))
    assert idx.dtype == np.int64 and sims.dtype == np.float32 and idx.shape == (150, 5)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(sims, ref_sims, atol=1e-5)
    assert (np.diff(sims, axis=1) <= 1e-7).all()
    assert not (idx == np.arange(150)[:, None]).any()


def test_block_memory_bound_gives_same_answer() -> None:
    x = _unit(np.random.default_rng(1), 120, 8)
    small = knn_search(x, 4, method="exact", max_block_bytes=4 * 120 * 3)  # 3 rows per block
    large = knn_search(x, 4, method="exact")
    np.testing.assert_array_equal(small[0], large[0])


def test_include_self_and_row_queries() -> None:
    x = _unit(np.random.default_rng(2), 60, 6)
    idx, sims = knn_search(x, 3, exclude_self=False, method="exact")
    np.testing.assert_array_equal(idx[:, 0], np.arange(60))
    np.testing.assert_allclose(sims[:, 0], 1.0, atol=1e-5)
    rows = np.array([5, 17, 42])
    sub_idx, _ = knn_search(x, 3, queries=rows, method="exact")
    full_idx, _ = knn_search(x, 3, method="exact")
    np.testing.assert_array_equal(sub_idx, full_idx[rows])


def test_external_query_vectors_and_duplicates() -> None:
    rng = np.random.default_rng(3)
    x = _unit(rng, 40, 5)
    x[7] = x[3]  # a duplicate is a genuine neighbour, only the own index is excluded
    idx, sims = knn_search(x, 1, method="exact")
    assert idx[3, 0] == 7 and idx[7, 0] == 3
    assert sims[3, 0] == pytest.approx(1.0, abs=1e-6)
    q = _unit(rng, 4, 5)
    qi, _ = knn_search(x, 2, queries=q, method="exact")
    ref, _ = _brute(x, q, 2, None)
    np.testing.assert_array_equal(qi, ref)


def test_bad_inputs() -> None:
    x = _unit(np.random.default_rng(4), 10, 3)
    with pytest.raises(ValueError, match="k must be"):
        knn_search(x, 10)
    with pytest.raises(ValueError, match="unknown kNN method"):
        knn_search(x, 2, method="lsh")
    with pytest.raises(ValueError, match="queries"):
        knn_search(x, 2, queries=np.zeros((2, 4), np.float32))
    assert knn_search(x, 10, exclude_self=False)[0].shape == (10, 10)


def test_ann_close_to_exact_on_clustered_data() -> None:
    rng = np.random.default_rng(5)
    centers = _unit(rng, 20, 16)
    x = centers[rng.integers(0, 20, 3000)] + 0.15 * rng.standard_normal((3000, 16))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    exact, _ = knn_search(x, 10, method="exact")
    approx, approx_sims = knn_search(x, 10, method="ann", nprobe=8)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    assert recall > 0.9
    assert not (approx == np.arange(3000)[:, None]).any()
    assert (np.diff(approx_sims, axis=1) <= 1e-6).all()


def test_ann_with_every_cell_probed_is_exact() -> None:
    x = _unit(np.random.default_rng(6), 400, 8)
    exact_idx, exact_sims = knn_search(x, 5, method="exact")
    ann_idx, ann_sims = knn_search(x, 5, method="ann", nprobe=10_000)
    np.testing.assert_array_equal(ann_idx, exact_idx)
    np.testing.assert_allclose(ann_sims, exact_sims, atol=1e-6)
    rows = np.array([0, 9, 399])
    sub, _ = knn_search(x, 5, queries=rows, method="ann", nprobe=10_000)
    np.testing.assert_array_equal(sub, exact_idx[rows])
    ext = _unit(np.random.default_rng(7), 3, 8)
    ext_ann, _ = knn_search(x, 4, queries=ext, method="ann", nprobe=10_000)
    np.testing.assert_array_equal(ext_ann, _brute(x, ext, 4, None)[0])


def test_spherical_kmeans_finds_planted_directions() -> None:
    from backend.scoring.knn import nearest_centroid, spherical_kmeans

    rng = np.random.default_rng(8)
    centers = np.eye(4, 6, dtype=np.float32)
    x = centers[np.repeat(np.arange(4), 50)] + 0.05 * rng.standard_normal((200, 6))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    cents = spherical_kmeans(x, 4, seed=0)
    np.testing.assert_allclose(np.linalg.norm(cents, axis=1), 1.0, atol=1e-5)
    cells = nearest_centroid(x, cents)
    assert len({tuple(np.unique(cells[i * 50 : (i + 1) * 50])) for i in range(4)}) == 4
