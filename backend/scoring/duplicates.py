"""Near-duplicate groups: connected components of the "at least this similar" graph.

Algorithm
---------
1. Every sample's k nearest neighbours by cosine (computed by the caller, e.g.
   :func:`backend.scoring.knn.knn_search`).
2. An edge joins two samples whose similarity is at least ``threshold``.
3. Groups are the connected components (scipy's ``connected_components`` on the sparse edge
   graph), numbered by their smallest member index; samples without an edge get -1.

This is the grouping FiftyOne Brain's ``compute_near_duplicates`` and cleanlab's Datalab
near-duplicate check make (a threshold on embedding distance, then components), without an
N x N matrix: with k neighbours per sample the graph has at most N k edges. A component can
chain (a ~ b ~ c with a, c further apart than the threshold); the caller shows each member's
similarity to the group's first member so that a reviewer sees it.
"""

from __future__ import annotations

import numpy as np


def near_duplicate_groups(neighbors: np.ndarray, similarities: np.ndarray, *, threshold: float) -> np.ndarray:
    """Group id per sample (N,) int64: the smallest index in its component, -1 when alone.

    ``neighbors`` (N, k) int indices and ``similarities`` (N, k) cosine similarities of each
    row's k nearest other rows (exact or IVF, :func:`backend.scoring.knn.knn_search`);
    ``threshold`` in (-1, 1]: the least similarity of an edge. Linear in N k: the edges above
    the threshold form a sparse graph whose components scipy labels in one pass
    (measured at 1M rows in ``bench/results/near_duplicates_scale.json``).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    neighbors = np.asarray(neighbors)
    similarities = np.asarray(similarities)
    if neighbors.shape != similarities.shape or neighbors.ndim != 2:
        raise ValueError(f"neighbors {neighbors.shape} and similarities {similarities.shape} must both be (N, k)")
    n = neighbors.shape[0]
    if n == 0:
        return np.empty(0, dtype=np.int64)
    rows, cols = np.nonzero(similarities >= threshold)
    targets = neighbors[rows, cols].astype(np.int64)
    if targets.size and (targets.min() < 0 or targets.max() >= n):
        raise ValueError(f"neighbour indices must lie in [0, {n}); got {targets.min()}..{targets.max()}")
    graph = coo_matrix((np.ones(rows.size, np.int32), (rows, targets)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    first = np.full(component.max() + 1, n, dtype=np.int64)
    np.minimum.at(first, component, np.arange(n, dtype=np.int64))
    sizes = np.bincount(component)
    return np.where(sizes[component] > 1, first[component], -1)


#: A pair is a near duplicate when it is this many times closer (cosine distance) than the
#: median sample is to its nearest neighbour.
RELATIVE_DISTANCE = 0.1


def data_threshold(nearest_similarity: np.ndarray, *, relative: float = RELATIVE_DISTANCE) -> float:
    """The cosine threshold for this data: ``1 - relative * median(1 - s1)``, where ``s1`` is each
    sample's similarity to its nearest other sample.

    A fixed cosine does not travel between embeddings: on the digits' pixel vectors the median
    nearest neighbour is at distance 0.017 and 0.98 would join 60 % of the samples into chains,
    while CLIP-like embeddings spread neighbours much further apart. "Ten times closer than a
    typical nearest neighbour" scales with the embedding: on the digits (no duplicates) it
    gives 0.9983, above their closest pair (0.9973), so nothing is flagged; planted perturbed
    copies are found at any scale (tests/scoring/test_duplicates.py).
    """
    distance = 1.0 - np.asarray(nearest_similarity, dtype=np.float64)
    if distance.size == 0:
        return 1.0
    return float(1.0 - relative * np.median(np.clip(distance, 0.0, 2.0)))
