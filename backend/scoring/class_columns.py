"""Per-sample class columns of (..., N, C) arrays (logits, probabilities, label votes): the
column of each sample's given label, the best column among the other classes, and the softmax
over the classes.

One implementation for the margins the scorers take (AUM's logit margin, confident learning's
normalised margin, the kNN vote's score, the combined verdict's suggested label).
"""

from __future__ import annotations

import numpy as np


def _index(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.broadcast_to(np.asarray(labels)[:, None], values.shape[:-1] + (1,))


def true_class(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``values[..., i, labels[i]]`` from (..., N, C) -> (..., N)."""
    return np.take_along_axis(values, _index(values, labels), axis=-1)[..., 0]


def best_other(
    values: np.ndarray, labels: np.ndarray, *, in_place: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The largest value over the classes other than each sample's label, and that class.

    ``values`` (..., N, C), ``labels`` (N,) ints in [0, C) -> (best (..., N), argbest (..., N)).
    With one class there is no other: best is -inf and argbest the label itself. ``in_place``
    masks the label column of ``values`` itself and restores it before returning (no (..., N, C)
    copy; ``values`` must be writeable and not read meanwhile); otherwise a copy is masked.
    """
    idx = _index(values, labels)
    work = values if in_place else np.array(values, copy=True)
    own = np.take_along_axis(work, idx, axis=-1)
    np.put_along_axis(work, idx, -np.inf, axis=-1)
    arg = work.argmax(axis=-1)
    best = np.take_along_axis(work, arg[..., None], axis=-1)[..., 0]
    if in_place:
        np.put_along_axis(work, idx, own, axis=-1)
    return best, arg


def softmax(z: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, float64."""
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
