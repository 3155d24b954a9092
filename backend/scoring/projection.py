"""2-D projections of embeddings for the map view."""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

METHODS = ("umap", "pca")
#: Rows placed by one ``transform`` call: bounds the memory of the neighbour search and of the
#: graph UMAP builds for them (a few hundred MB at 50k), whatever N is.
TRANSFORM_BATCH = 50_000


def project_2d(
    embeddings: np.ndarray,
    *,
    method: str = "umap",
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    metric: str = "cosine",
    seed: int = 0,
    fit_sample: int = 20_000,
) -> np.ndarray:
    """Map ``embeddings`` (N, D) to 2-D coordinates (N, 2) float32.

    UMAP (McInnes, Healy & Melville 2018) with the given neighbours / min_dist / metric, seeded.
    PCA is the fast, deterministic alternative (and what tests use to avoid numba compilation).

    Algorithm (UMAP above ``fit_sample`` points)
    --------------------------------------------
    1. Draw a seeded random sample of ``fit_sample`` rows and fit UMAP on it.
    2. Place every remaining row with ``transform`` (its nearest neighbours among the fitted
       rows, then a few optimisation epochs with the fitted rows fixed), ``TRANSFORM_BATCH``
       rows at a time: linear in N, where fitting is super-linear. The fitted rows keep their
       fit coordinates. Seeded (``random_state``, ``transform_seed``): the same input gives the
       same map (umap-learn then optimises single-threaded).

    Choice of the default ``fit_sample`` (``ProjectionSettings``): ``bench/umap_scale.py``
    compares fit-on-sample with the full fit at 50,000 points (trustworthiness, 2-D kNN labels).
    """
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"embeddings must be a non-empty (N, D) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("embeddings contain NaN or infinite values; re-run `thresher embed`")
    if method == "pca":
        return _pca_2d(x)
    if method != "umap":
        raise ValueError(f"unknown projection method {method!r}; choose one of {', '.join(METHODS)}")
    n = x.shape[0]
    if n < 4:
        return _pca_2d(x)
    try:
        import umap
    except ImportError as exc:  # pragma: no cover - umap-learn is a declared dependency
        raise ImportError("UMAP needs umap-learn: pip install umap-learn") from exc
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=min(n_neighbors, n - 1),
        min_dist=min_dist,
        metric=metric,
        random_state=seed,
        transform_seed=seed,
        n_jobs=1,  # what a seed implies in umap-learn (said here, so it does not warn)
    )
    if fit_sample < n_neighbors + 1:
        raise ValueError(f"fit_sample {fit_sample} is too small: UMAP needs more points than n_neighbors "
                         f"({n_neighbors}); use a few thousand or more")
    if n <= fit_sample:
        return reducer.fit_transform(x).astype(np.float32)
    rng = np.random.default_rng(seed)
    fit_idx = np.sort(rng.choice(n, size=fit_sample, replace=False))
    rest = np.setdiff1d(np.arange(n), fit_idx)
    out = np.empty((n, 2), dtype=np.float32)
    out[fit_idx] = reducer.fit_transform(x[fit_idx])
    log.info("UMAP fitted on %d of %d points; transforming the other %d", fit_sample, n, rest.size)
    for start in range(0, rest.size, TRANSFORM_BATCH):
        chunk = rest[start : start + TRANSFORM_BATCH]
        out[chunk] = reducer.transform(x[chunk])
        log.info("UMAP placed %d of %d points", fit_sample + start + chunk.size, n)
    return out


def _pca_2d(x: np.ndarray) -> np.ndarray:
    centred = x - x.mean(axis=0, keepdims=True)
    if centred.shape[0] < 2:
        return np.zeros((x.shape[0], 2), np.float32)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    comps = vt[:2]
    comps = comps * np.sign(comps[np.arange(comps.shape[0]), np.abs(comps).argmax(axis=1)])[:, None]
    xy = centred @ comps.T
    if xy.shape[1] < 2:
        xy = np.pad(xy, ((0, 0), (0, 2 - xy.shape[1])))
    return xy.astype(np.float32)
