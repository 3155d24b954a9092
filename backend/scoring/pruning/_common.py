"""Input checks and small helpers shared by the pruning scores and procedures."""

from __future__ import annotations

import numpy as np

from backend.scoring.class_columns import best_other, softmax, true_class  # noqa: F401  (shared helpers)
from backend.scoring.ranks import rank_quantile  # noqa: F401  (shared helper)
from backend.scoring.vectors import EPS, l2_normalize, row_blocks  # noqa: F401  (shared helpers)


def as_runs(logits: np.ndarray, *, name: str = "logits") -> np.ndarray:
    """View (E, N, C) or (S, E, N, C) logits as (S, E, N, C) float64 (S runs / seeds)."""
    z = np.asarray(logits)
    if z.ndim == 3:
        z = z[None]
    if z.ndim != 4 or 0 in z.shape:
        raise ValueError(
            f"{name} must be (epochs, N, classes) or (seeds, epochs, N, classes), got {z.shape}"
        )
    z = z.astype(np.float64, copy=False)
    if not np.isfinite(z).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    return z


def check_labels(labels: np.ndarray, n: int, n_classes: int | None = None) -> np.ndarray:
    """Return ``labels`` as (N,) int64 after checking shape, dtype and range."""
    y = np.asarray(labels)
    if y.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {y.shape}")
    if n and not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integer class ids, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if n and y.min() < 0:
        raise ValueError("labels must be non-negative class ids")
    if n and n_classes is not None and y.max() >= n_classes:
        raise ValueError(f"labels must be < n_classes={n_classes}, got max {int(y.max())}")
    return y


def check_embeddings(embeddings: np.ndarray, *, name: str = "embeddings") -> np.ndarray:
    x = np.asarray(embeddings)
    if x.ndim != 2 or 0 in x.shape:
        raise ValueError(f"{name} must be a non-empty (N, D) array, got shape {x.shape}")
    x = x.astype(np.float32, copy=False)
    if not all(np.isfinite(x[rows]).all() for rows in row_blocks(x.shape[0])):
        raise ValueError(f"{name} contain NaN or infinite values")
    return x

