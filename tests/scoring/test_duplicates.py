"""Near-duplicate groups on constructed data with known answers."""

from __future__ import annotations

import numpy as np

from backend.scoring.duplicates import data_threshold, near_duplicate_groups
from backend.scoring.knn import knn_search


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def planted(seed: int, n: int = 400, dim: int = 32, noise: float = 0.01) -> tuple[np.ndarray, list[set[int]]]:
    """``n`` random directions plus perturbed copies: pairs of 0..9 and a triple of 10."""
    rng = np.random.default_rng(seed)
    base = unit(rng.normal(size=(n, dim)))
    copies, truth = [], []
    for k in range(10):
        copies.append(base[k] + noise * rng.normal(size=dim))
        truth.append({k, n + len(copies) - 1})
    for _ in range(2):
        copies.append(base[10] + noise * rng.normal(size=dim))
    truth.append({10, n + 10, n + 11})
    return unit(np.vstack([base, np.asarray(copies)])), truth


def found_groups(groups: np.ndarray) -> list[set[int]]:
    return [set(np.flatnonzero(groups == g).tolist()) for g in np.unique(groups[groups >= 0])]


def test_planted_copies_are_found_exactly_with_the_data_threshold() -> None:
    for seed in range(3):
        vectors, truth = planted(seed)
        neighbors, sims = knn_search(vectors, 10)
        groups = near_duplicate_groups(neighbors, sims, threshold=data_threshold(sims[:, 0]))
        assert sorted(map(sorted, found_groups(groups))) == sorted(map(sorted, truth))


def test_groups_are_components_numbered_by_their_smallest_member() -> None:
    neighbors = np.array([[1, 2], [0, 2], [3, 0], [2, 1], [0, 1]])
    sims = np.array([[0.99, 0.5], [0.99, 0.2], [0.97, 0.1], [0.97, 0.1], [0.3, 0.2]])
    assert near_duplicate_groups(neighbors, sims, threshold=0.95).tolist() == [0, 0, 2, 2, -1]
    assert near_duplicate_groups(neighbors, sims, threshold=0.98).tolist() == [0, 0, -1, -1, -1]


def test_data_threshold_scales_with_the_spread_of_neighbours() -> None:
    assert data_threshold(np.array([0.9, 0.9, 0.8])) == 1 - 0.1 * 0.1
    assert data_threshold(np.array([])) == 1.0
