"""Near-duplicate groups: connected components of the "at least this similar" graph.

Algorithm
---------
1. Every sample's k nearest neighbours by cosine (computed by the caller, e.g.
   :func:`backend.scoring.knn.knn_search`).
2. An edge joins two samples whose similarity is at least ``threshold`` (a cosine the user sets),
   or, by default, under the rule chosen on the data (:func:`data_edges`): ten times closer than
   the median sample is to its nearest neighbour, or a mutual pair (or small group) set apart
   from everything else by a gap (:func:`separated_edges`).
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


def near_duplicate_groups(neighbors: np.ndarray, similarities: np.ndarray, *, threshold: float | None = None,
                          edges: np.ndarray | None = None) -> np.ndarray:
    """Group id per sample (N,) int64: the smallest index in its component, -1 when alone.

    ``neighbors`` (N, k) int indices and ``similarities`` (N, k) cosine similarities of each
    row's k nearest other rows (exact or IVF, :func:`backend.scoring.knn.knn_search`). The
    edges: ``threshold`` in (-1, 1], the least similarity of an edge, or ``edges`` (N, k) bool,
    which of those neighbours are near duplicates (:func:`data_edges`); exactly one of the two.
    Linear in N k: the edges form a sparse graph whose components scipy labels in one pass
    (measured at 1M rows in ``bench/results/near_duplicates_scale.json``).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    neighbors = np.asarray(neighbors)
    similarities = np.asarray(similarities)
    if neighbors.shape != similarities.shape or neighbors.ndim != 2:
        raise ValueError(f"neighbors {neighbors.shape} and similarities {similarities.shape} must both be (N, k)")
    if (threshold is None) == (edges is None):
        raise ValueError("give exactly one of threshold and edges")
    if edges is not None and np.shape(edges) != neighbors.shape:
        raise ValueError(f"edges {np.shape(edges)} must be shaped like neighbors {neighbors.shape}")
    n = neighbors.shape[0]
    if n == 0:
        return np.empty(0, dtype=np.int64)
    rows, cols = np.nonzero(similarities >= threshold if edges is None else np.asarray(edges, bool))
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


#: A pair (or a group of up to k) set apart: every member's distance to the others is at most this
#: share of its distance to the next neighbour beyond them (Lowe's ratio test, 2004, applied both ways)...
SEPARATED_RATIO = 0.3
#: ... and at most this share of the median nearest-neighbour distance.
SEPARATED_CAP = 0.5


def separated_edges(neighbors: np.ndarray, similarities: np.ndarray, *, ratio: float = SEPARATED_RATIO,
                    cap: float = SEPARATED_CAP) -> np.ndarray:
    """(N, k) bool: the neighbour edges of pairs and small groups set apart from the rest.

    A perturbed copy (noise, a brightness change, re-encoding) can sit further from its source
    than the fixed ``data_threshold`` allows and still be unmistakable: the two are each other's
    nearest neighbours with a wide gap to everything else, while two merely similar samples have
    other neighbours almost as close. For each row with sorted distances ``d_1 <= ... <= d_k``
    (``1 - similarity``) the group it proposes is its first ``j`` neighbours for the largest ``j``
    with ``d_j <= ratio * d_{j+1}`` and ``d_j <= cap * median(d_1)``; an edge is kept when both
    ends propose it. Groups larger than ``k`` are left to the threshold.

    The ratio and the cap were chosen on validation draws (``bench/near_duplicate_rule.py
    --sweep``: digits under five embeddings with copies planted under six perturbations). The
    ratio decides how many natural look-alikes join: over the five clean embeddings 2 samples
    (the threshold's own) at 0.25, 8 at 0.3, 22 at 0.35; the 6 more at 0.3 are pairs of digits
    that differ by 0.029-0.039 of the range per pixel, as much as a copy with 4-5 % pixel noise.
    Above a cap of 0.5 the cap barely matters. Report in ``bench/results/near_duplicate_rule.json``.
    """
    neighbors = np.asarray(neighbors)
    distance = np.clip(1.0 - np.asarray(similarities, dtype=np.float64), 0.0, None)
    n, k = distance.shape
    out = np.zeros((n, k), dtype=bool)
    if n == 0 or k < 2:
        return out
    limit = cap * float(np.median(distance[:, 0]))
    gap = (distance[:, :-1] <= limit) & (distance[:, :-1] <= ratio * distance[:, 1:])
    has = gap.any(axis=1)
    last = (k - 2) - np.argmax(gap[:, ::-1], axis=1)  # the largest j - 1 with a gap after it
    proposed = has[:, None] & (np.arange(k)[None, :] <= last[:, None])
    rows, cols = np.nonzero(proposed)
    if rows.size == 0:
        return out
    targets = neighbors[rows, cols].astype(np.int64)
    # an unknown neighbour (-1) proposes nothing back; without the check its code could collide
    mutual = (targets >= 0) & np.isin(targets * n + rows, rows.astype(np.int64) * n + targets)
    out[rows[mutual], cols[mutual]] = True
    return out


def data_edges(neighbors: np.ndarray, similarities: np.ndarray) -> tuple[np.ndarray, float]:
    """(edges (N, k) bool, the threshold): the near-duplicate rule chosen on the data, the
    :func:`data_threshold` on every edge or :func:`separated_edges`. Pass ``edges`` to
    :func:`near_duplicate_groups` and :func:`backend.scoring.health.split_leaks`."""
    similarities = np.asarray(similarities)
    if similarities.ndim != 2 or similarities.shape[1] == 0:
        return np.zeros(similarities.shape, dtype=bool), 1.0
    threshold = data_threshold(similarities[:, 0])
    return (similarities >= threshold) | separated_edges(neighbors, similarities), threshold
