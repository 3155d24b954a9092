"""Near-duplicate groups on constructed data with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from backend.scoring.duplicates import (
    data_edges,
    data_threshold,
    near_duplicate_groups,
    separated_edges,
)
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


def test_separated_edges_join_mutual_pairs_set_apart_by_a_gap() -> None:
    """0-1: each other's nearest, 10 times closer than the next: joined. 4-5: 4 proposes 5, 5
    proposes 4 and 2 (its gap comes after two); only the mutual edge stays. 2-3, 6-8: no gap."""
    neighbors = np.array([[1, 2, 3], [0, 3, 2], [3, 0, 1], [2, 0, 1], [5, 2, 3], [4, 2, 3],
                          [7, 8, 2], [6, 8, 3], [6, 7, 0]])
    sims = np.array([[0.98, 0.80, 0.79], [0.98, 0.79, 0.78], [0.80, 0.80, 0.78], [0.80, 0.79, 0.79],
                     [0.97, 0.80, 0.70], [0.97, 0.95, 0.70], [0.80, 0.79, 0.7], [0.80, 0.79, 0.7],
                     [0.79, 0.79, 0.7]])
    expected = np.zeros((9, 3), bool)
    expected[[0, 1, 4, 5], 0] = True
    np.testing.assert_array_equal(separated_edges(neighbors, sims), expected)
    # the cap, a share of the median nearest distance (0.2): 5's group lies at 0.05
    assert separated_edges(neighbors, sims, cap=0.2)[[0, 1], 0].all()
    assert not separated_edges(neighbors, sims, cap=0.2)[[4, 5]].any()
    assert not separated_edges(neighbors, sims, cap=0.05).any()  # nothing within 0.01
    # a group of three set apart: every edge among them
    neighbors3 = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [2, 1, 0]])
    sims3 = np.array([[0.99, 0.99, 0.5], [0.99, 0.99, 0.5], [0.99, 0.99, 0.5], [0.5, 0.5, 0.5]])
    edges3 = separated_edges(neighbors3, sims3, cap=100.0)  # 3 of 4 rows are in the group: no cap here
    assert edges3[:3, :2].all() and not edges3[:, 2].any() and not edges3[3].any()
    assert not separated_edges(neighbors[:, :1], sims[:, :1]).any()  # one neighbour: no gap to see
    # an unknown neighbour (-1) is never an edge, even where its code would match another pair's
    unknown = np.array([[-1, 1, 2], [2, 0, 1], [-1, 0, 1]])  # 0 and 2 propose -1: codes -1 and -1
    close = np.array([[0.99, 0.5, 0.5], [0.5, 0.5, 0.5], [0.99, 0.5, 0.5]])
    assert not separated_edges(unknown, close, cap=100.0).any()


def test_the_data_rule_finds_noisier_copies_of_real_digits_than_the_threshold() -> None:
    """Copies of 30 real digits with pixel noise of 5 % of the range: most sit further from their
    source than the threshold, all are each other's nearest with a gap. On the clean digits the
    rule joins only pairs that differ by about as little as such a copy."""
    from sklearn.datasets import load_digits

    x = load_digits().data / 16.0
    rng = np.random.default_rng(0)
    sources = rng.choice(len(x), 30, replace=False)
    copies = np.clip(x[sources] + rng.normal(0, 0.05, (30, 64)), 0, 1)
    vectors = unit(np.vstack([x, copies]))
    neighbors, sims = knn_search(vectors, 10)
    edges, threshold = data_edges(neighbors, sims)
    assert threshold == data_threshold(sims[:, 0])
    by_threshold = near_duplicate_groups(neighbors, sims, threshold=threshold)
    by_rule = near_duplicate_groups(neighbors, sims, edges=edges)
    copy_rows = np.arange(len(x), len(x) + 30)
    found = by_rule[copy_rows] == by_rule[sources]
    assert (by_threshold[copy_rows] >= 0).mean() < 0.5
    assert (found & (by_rule[copy_rows] >= 0)).mean() >= 0.9
    clean_neighbors, clean_sims = knn_search(unit(x), 10)
    clean = near_duplicate_groups(clean_neighbors, clean_sims, edges=data_edges(clean_neighbors, clean_sims)[0])
    assert (clean >= 0).sum() <= 6
    for g in np.unique(clean[clean >= 0]):
        members = np.flatnonzero(clean == g)
        assert np.abs(x[members[0]] - x[members[1:]]).mean() < 0.04  # as alike as a copy with 5 % noise


def test_data_threshold_scales_with_the_spread_of_neighbours() -> None:
    assert data_threshold(np.array([0.9, 0.9, 0.8])) == 1 - 0.1 * 0.1
    assert data_threshold(np.array([])) == 1.0


def reference_groups(neighbors: np.ndarray, similarities: np.ndarray, threshold: float) -> list[int]:
    """Slow, obviously correct: flood fill over the undirected edges at or above the threshold."""
    n = len(neighbors)
    adjacent: list[set[int]] = [set() for _ in range(n)]
    for a in range(n):
        for b, s in zip(neighbors[a], similarities[a], strict=True):
            if s >= threshold and a != b:
                adjacent[a].add(int(b))
                adjacent[int(b)].add(a)
    group = [-1] * n
    for start in range(n):
        if group[start] != -1 or not adjacent[start]:
            continue
        seen, todo = {start}, [start]
        while todo:
            for b in adjacent[todo.pop()] - seen:
                seen.add(b)
                todo.append(b)
        for member in seen:
            group[member] = min(seen)
    return group


def test_sparse_grouping_matches_a_flood_fill_reference() -> None:
    rng = np.random.default_rng(7)
    for n, k in ((1, 1), (30, 3), (200, 5)):
        neighbors = rng.integers(0, n, (n, k))
        similarities = rng.uniform(0.0, 1.0, (n, k))
        for threshold in (0.5, 0.9, 0.99):
            got = near_duplicate_groups(neighbors, similarities, threshold=threshold).tolist()
            assert got == reference_groups(neighbors, similarities, threshold)


def test_empty_input_and_bad_indices() -> None:
    assert near_duplicate_groups(np.empty((0, 3), int), np.empty((0, 3)), threshold=0.9).tolist() == []
    assert data_edges(np.empty((0, 3), int), np.empty((0, 3)))[0].shape == (0, 3)
    with pytest.raises(ValueError, match="exactly one of threshold and edges"):
        near_duplicate_groups(np.zeros((3, 2), int), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="exactly one of threshold and edges"):
        near_duplicate_groups(np.zeros((3, 2), int), np.zeros((3, 2)), threshold=0.9, edges=np.ones((3, 2), bool))
    with pytest.raises(ValueError, match="must be shaped like neighbors"):
        near_duplicate_groups(np.zeros((3, 2), int), np.zeros((3, 2)), edges=np.ones((3, 1), bool))
    with pytest.raises(ValueError, match=r"neighbour indices must lie in \[0, 2\)"):
        near_duplicate_groups(np.array([[1], [2]]), np.array([[0.99], [0.99]]), threshold=0.9)
    with pytest.raises(ValueError, match="must both be"):
        near_duplicate_groups(np.zeros((3, 2), int), np.zeros((3, 3)), threshold=0.9)


def clustered_with_copies(seed: int, n: int = 6000, dim: int = 32) -> tuple[np.ndarray, list[set[int]]]:
    """Clustered rows (60 modes, like real embeddings) plus perturbed copies of 40 of them: 30
    pairs and 10 triples; the truth is the planted groups."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.normal(size=(60, dim)))
    base = unit(centres[rng.integers(0, 60, n)] + rng.normal(0, 0.15, (n, dim)))
    sources = rng.choice(n, 40, replace=False)
    copies, truth = [], []
    for j, src in enumerate(sources):
        group = {int(src)}
        for _ in range(1 if j < 30 else 2):
            copies.append(base[src] + rng.normal(0, 0.005, dim))
            group.add(n + len(copies) - 1)
        truth.append(group)
    return unit(np.vstack([base, np.asarray(copies)])).astype(np.float32), truth


def test_planted_copies_are_found_through_the_ivf_search_as_through_the_exact_one() -> None:
    """The path the health stage takes above 100k rows (``knn_search`` switches to IVF), forced
    here on 6k rows: the same groups as the exact search, and exactly the planted ones."""
    vectors, truth = clustered_with_copies(0)
    by_method = {}
    for method in ("exact", "ann"):
        neighbors, sims = knn_search(vectors, 10, method=method, seed=0)
        by_method[method] = near_duplicate_groups(neighbors, sims, edges=data_edges(neighbors, sims)[0])
    assert sorted(map(sorted, found_groups(by_method["ann"]))) == sorted(map(sorted, truth))
    np.testing.assert_array_equal(by_method["ann"], by_method["exact"])


def test_a_group_larger_than_k_is_still_one_group() -> None:
    """25 copies of one row with k = 5 neighbours each: no row sees all the others, the
    components still join them."""
    rng = np.random.default_rng(3)
    base = unit(rng.normal(size=(300, 16)))
    copies = unit(base[7] + rng.normal(0, 0.002, (25, 16)))
    vectors = np.vstack([base, copies])
    neighbors, sims = knn_search(vectors, 5)
    groups = near_duplicate_groups(neighbors, sims, threshold=data_threshold(sims[:, 0]))
    assert found_groups(groups) == [{7, *range(300, 325)}]
