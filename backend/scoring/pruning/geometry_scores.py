"""Pruning scores from the geometry of the embeddings (no training needed).

``embeddings`` are (N, D) float arrays; the cosine-based scores expect (and normalise to) unit
rows. Neighbourhoods come from :func:`backend.scoring.knn.knn_search` (blocked exact search or
an IVF index, never an N x N matrix); clustering from scikit-learn k-means (mini-batch above
:data:`MINIBATCH_ABOVE` rows).
"""

from __future__ import annotations

import logging
import math
from typing import NamedTuple

import numpy as np

from backend.scoring.knn import knn_search
from backend.scoring.pruning._common import check_embeddings, check_labels, l2_normalize

log = logging.getLogger(__name__)

MINIBATCH_ABOVE = 50_000
BLOCK_ROWS = 2048  # rows per block of within-cluster similarities in SemDeDup


def kmeans(
    embeddings: np.ndarray, n_clusters: int, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded k-means -> (assignments (N,) int64, centroids (K, D) float32)."""
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from threadpoolctl import threadpool_limits

    x = check_embeddings(embeddings)
    k = int(min(max(1, n_clusters), x.shape[0]))
    if x.shape[0] > MINIBATCH_ABOVE:
        model = MiniBatchKMeans(n_clusters=k, batch_size=4096, n_init=3, random_state=seed)
        assign = model.fit_predict(x).astype(np.int64)
    else:
        # One OpenMP thread for small problems: scikit-learn's Lloyd loop spins its OpenMP
        # workers, and beside torch's thread pool on a busy 2-core box one 1,797 x 64 fit with
        # K = 42 took 1.3 s with the default threads and 0.08 s with one (same result).
        with threadpool_limits(limits=1, user_api="openmp"):
            model = KMeans(n_clusters=k, n_init=3, random_state=seed)
            assign = model.fit_predict(x).astype(np.int64)
    return assign, model.cluster_centers_.astype(np.float32)


def default_n_clusters(n: int) -> int:
    """sqrt(N), at least 2 and at most 1000 (Sorscher et al. 2022 find the prototype score
    insensitive to K over a wide range; pass the number of classes when known)."""
    return int(min(1000, max(2, round(math.sqrt(n)))))


class Clusters(NamedTuple):
    """A spherical k-means fit: ``assign`` (N,) int64 cluster ids, ``centroids`` (K, D) float32
    unit rows."""

    assign: np.ndarray
    centroids: np.ndarray


def spherical_clusters(embeddings: np.ndarray, n_clusters: int | None = None, *, seed: int = 0) -> Clusters:
    """Seeded k-means on the L2-normalised rows (K default :func:`default_n_clusters`), centroids
    renormalised: the clustering :func:`prototype_distance` and :func:`semdedup` share (pass it as
    ``clusters=`` to run both on one fit)."""
    return _fit_clusters(l2_normalize(check_embeddings(embeddings)), n_clusters, seed)


def _fit_clusters(unit: np.ndarray, n_clusters: int | None, seed: int) -> Clusters:
    k = default_n_clusters(unit.shape[0]) if n_clusters is None else n_clusters
    assign, centroids = kmeans(unit, k, seed=seed)
    return Clusters(assign, l2_normalize(centroids))


def _check_clusters(clusters: Clusters, n: int) -> Clusters:
    if clusters.assign.shape != (n,):
        raise ValueError(f"clusters assign {clusters.assign.shape[0]} rows, the embeddings have {n}")
    return clusters


def prototype_distance(
    embeddings: np.ndarray, *, n_clusters: int | None = None, seed: int = 0,
    clusters: Clusters | None = None,
) -> np.ndarray:
    """Self-supervised prototype score: cosine distance to the nearest k-means centroid.

    Sorscher et al. 2022, "Beyond neural scaling laws: beating power law scaling via data
    pruning" (NeurIPS): k-means in a self-supervised embedding space, no labels used.

    Parameters
    ----------
    embeddings : (N, D) floats; rows are L2-normalised here (spherical k-means).
    n_clusters : K; default :func:`default_n_clusters`.
    clusters : a :func:`spherical_clusters` fit of these embeddings to use instead of fitting
        (``n_clusters`` and ``seed`` are then unused).

    Returns
    -------
    (N,) float64 in [0, 2]. Higher = farther from its prototype = harder (the paper keeps hard
    samples when data is plentiful, easy ones when it is scarce).
    """
    x = l2_normalize(check_embeddings(embeddings))
    fit = _fit_clusters(x, n_clusters, seed) if clusters is None else _check_clusters(clusters, x.shape[0])
    cos = np.einsum("nd,nd->n", x, fit.centroids[fit.assign], dtype=np.float64)
    return 1.0 - cos


def class_median_distance(embeddings: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Euclidean distance of each sample to its class's coordinate-wise median embedding.

    The representation Moderate-DS ranks (Xia et al. 2023). (N,) float64 >= 0; higher = farther
    from the class's typical sample = harder.
    """
    x = check_embeddings(embeddings)
    y = check_labels(labels, x.shape[0])
    dist = np.empty(x.shape[0])
    for cls in np.unique(y):
        members = np.flatnonzero(y == cls)
        median = np.median(x[members], axis=0)
        dist[members] = np.linalg.norm(x[members] - median, axis=1)
    return dist


def moderate_score(embeddings: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Moderate-DS: how far a sample's distance-to-median is from the moderate (median) one.

    Xia et al. 2023, "Moderate Coreset: A Universal Method of Data Selection for Real-world
    Data-efficient Deep Learning" (ICLR): keep the samples whose distance to their class median
    is closest to the median distance. Choice made here: quantiles are taken within each class
    (the paper ranks globally), matching the per-class budgets; score = |q - 0.5| with q the
    within-class rank quantile of :func:`class_median_distance`.

    Returns
    -------
    (N,) float64 in [0, 0.5]. Lower = more moderate; Moderate-DS keeps the lowest
    (``keep="easy"`` on this score).
    """
    from backend.scoring.pruning._common import rank_quantile

    dist = class_median_distance(embeddings, labels)
    y = np.asarray(labels)
    score = np.empty_like(dist)
    for cls in np.unique(y):
        members = np.flatnonzero(y == cls)
        score[members] = np.abs(rank_quantile(dist[members]) - 0.5)
    return score


def knn_density(embeddings: np.ndarray, *, k: int = 10, method: str = "auto") -> np.ndarray:
    """Mean cosine similarity to the k nearest other samples.

    (N,) float64 in [-1, 1]. Higher = denser neighbourhood = more redundant / easier to drop;
    lower = isolated (rare or outlier).
    """
    x = l2_normalize(check_embeddings(embeddings))
    k = min(k, x.shape[0] - 1)
    if k < 1:
        raise ValueError("kNN density needs at least 2 samples")
    _, sims = knn_search(x, k, method=method)
    return density_from_sims(sims)


def density_from_sims(sims: np.ndarray) -> np.ndarray:
    """kNN density from precomputed neighbour similarities (N, k): their mean, float64."""
    return sims.astype(np.float64).mean(axis=1)


UNIQUENESS_WEIGHTS = (0.6, 0.3, 0.1)


def uniqueness_from_sims(sims: np.ndarray) -> np.ndarray:
    """Uniqueness from precomputed neighbour similarities (N, k), most similar first: the
    ``UNIQUENESS_WEIGHTS`` on the cosine distances of the first min(k, 3), float64."""
    k = min(len(UNIQUENESS_WEIGHTS), sims.shape[1])
    w = np.asarray(UNIQUENESS_WEIGHTS[:k]) / sum(UNIQUENESS_WEIGHTS[:k])
    return ((1.0 - sims[:, :k].astype(np.float64)) * w).sum(axis=1)


def knn_uniqueness(embeddings: np.ndarray, *, method: str = "auto") -> np.ndarray:
    """Uniqueness: weighted cosine distance to the 3 nearest other samples.

    As fiftyone-brain's ``compute_uniqueness`` (weights 0.6 / 0.3 / 0.1 on the 1st..3rd
    neighbour), without its final rescaling to max 1 (so scores are comparable across runs).

    Returns
    -------
    (N,) float64 in [0, 2]. Higher = more unique (0 = exact duplicates nearby).
    """
    x = l2_normalize(check_embeddings(embeddings))
    k = min(len(UNIQUENESS_WEIGHTS), x.shape[0] - 1)
    if k < 1:
        raise ValueError("kNN uniqueness needs at least 2 samples")
    _, sims = knn_search(x, k, method=method)
    return uniqueness_from_sims(sims)


class Duplicates(NamedTuple):
    """SemDeDup result: ``is_duplicate`` (N,) bool (drop these), ``duplicate_of`` (N,) int64
    (the kept sample it duplicates, -1 for kept samples), ``cluster`` (N,) int64 k-means id."""

    is_duplicate: np.ndarray
    duplicate_of: np.ndarray
    cluster: np.ndarray


def semdedup(
    embeddings: np.ndarray,
    *,
    threshold: float = 0.95,
    n_clusters: int | None = None,
    keep: str = "farthest",
    seed: int = 0,
    clusters: Clusters | None = None,
) -> Duplicates:
    """SemDeDup near-duplicate detection (Abbas et al. 2023, "SemDeDup: Data-efficient
    learning at web-scale through semantic deduplication").

    Algorithm
    ---------
    1. Spherical k-means on the L2-normalised embeddings (K = ``n_clusters``, default
       :func:`default_n_clusters`).
    2. Inside each cluster, order the members by cosine similarity to the centroid: ascending for
       ``keep="farthest"`` (the paper keeps the least prototypical member of a duplicate group),
       descending for ``keep="nearest"``.
    3. A member is a duplicate when its cosine similarity to any earlier member exceeds
       ``threshold`` (= 1 - epsilon in the paper). Computed in row blocks (O(block x cluster)
       memory). As in the paper, a member close only to an earlier *duplicate* is dropped too.
    4. ``duplicate_of`` follows each duplicate's most similar earlier member down to a kept one.

    ``clusters``: a :func:`spherical_clusters` fit of these embeddings to use for step 1.
    """
    if keep not in ("farthest", "nearest"):
        raise ValueError(f"keep must be 'farthest' or 'nearest', got {keep!r}")
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold is a cosine similarity in [-1, 1], got {threshold}")
    x = l2_normalize(check_embeddings(embeddings))
    n = x.shape[0]
    fit = _fit_clusters(x, n_clusters, seed) if clusters is None else _check_clusters(clusters, n)
    assign, centroids = fit
    to_centroid = np.einsum("nd,nd->n", x, centroids[assign])
    is_dup = np.zeros(n, dtype=bool)
    parent = np.full(n, -1, dtype=np.int64)
    for cls in np.unique(assign):
        members = np.flatnonzero(assign == cls)
        sign = 1.0 if keep == "farthest" else -1.0
        members = members[np.argsort(sign * to_centroid[members], kind="stable")]
        xm = x[members]
        for start in range(1, members.size, BLOCK_ROWS):
            stop = min(start + BLOCK_ROWS, members.size)
            sims = xm[start:stop] @ xm[:stop].T  # (block, stop)
            rows = np.arange(stop - start)
            earlier = np.arange(stop)[None, :] < (start + rows)[:, None]
            sims = np.where(earlier, sims, -np.inf)
            best = sims.argmax(axis=1)
            hit = sims[rows, best] > threshold
            is_dup[members[start:stop][hit]] = True
            parent[members[start:stop][hit]] = members[best[hit]]
    duplicate_of = parent.copy()
    for i in np.flatnonzero(is_dup):  # parents come earlier in their cluster: chains end
        root = parent[i]
        while is_dup[root]:
            root = parent[root]
        duplicate_of[i] = root
    log.info(
        "SemDeDup: %d of %d samples are near-duplicates (threshold %.3f)",
        is_dup.sum(),
        n,
        threshold,
    )
    return Duplicates(is_duplicate=is_dup, duplicate_of=duplicate_of, cluster=assign)
