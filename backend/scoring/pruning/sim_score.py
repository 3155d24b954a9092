"""The ``sim`` score: Separability, Integrity and Model uncertainty (SIM).

Not to be confused with the ``sims`` *procedure* (``sims:<score>``), the paper's importance
sampling, which lives in :mod:`backend.scoring.pruning.sims_sampling` and samples over any
score; this module is the score alone (and its three terms, each also registered by name).

Grosz et al. 2024, "Data Pruning via Separability, Integrity, and Model Uncertainty-Aware
Importance Sampling" (arXiv 2409.13915). Three per-sample terms, each higher = easier / cleaner:

* separability s = d_N / (d_P + eps): distance to the nearest other class over distance to the
  own class (the paper's recognizability-index form). Choices: class prototypes = the mean of
  the L2-normalised embeddings of each class, re-normalised; distance = cosine distance.
* integrity e = ||f(x)||_2, the norm of the UNnormalised embedding (higher norm = better quality
  input, Chai et al. 2023). Thresher stores it as a separate ``norm`` column, so it is an
  argument here.
* model certainty c = 1 - JSD(h_1..h_K), with JSD the generalised Jensen-Shannon divergence of
  K probes' predicted distributions, H(mean p) - mean H(p), divided by log K so c is in [0, 1].
  Choice: the K probes are the out-of-fold probes of K seeds
  (``probes.out_of_fold_probs_by_seed``), so the disagreement is not masked by memorisation.

The paper states that the terms are normalised and combined but not how. Choices here:
each term becomes a rank quantile (within each class when labels are given: a sample is
compared with its own class, whose norms and spreads differ from other classes'), and the SIM
score is their weighted geometric mean, (prod q_k^{w_k})^{1 / sum w}, in (0, 1]. Quantiles make
the heavy-tailed ratio s and the norm e comparable; the geometric mean keeps the paper's
"all three must be high" reading of the product.
"""

from __future__ import annotations

import numpy as np

from backend.scoring.pruning._common import (
    check_embeddings,
    check_labels,
    l2_normalize,
    rank_quantile,
    row_blocks,
)

QUANTILE_FLOOR = 1e-3  # quantile 0 would zero the whole product


def class_prototypes(embeddings: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(classes present (K,), unit-norm class means (K, D)) of the L2-normalised embeddings."""
    x = l2_normalize(check_embeddings(embeddings))
    y = check_labels(labels, x.shape[0])
    classes, inverse = np.unique(y, return_inverse=True)
    return classes, _prototypes(x, inverse, classes.size)


def _prototypes(unit: np.ndarray, inverse: np.ndarray, k: int) -> np.ndarray:
    sums = np.zeros((k, unit.shape[1]), dtype=np.float64)
    np.add.at(sums, inverse, unit)
    return l2_normalize(sums.astype(np.float32))


def separability(embeddings: np.ndarray, labels: np.ndarray, *, eps: float = 1e-6) -> np.ndarray:
    """s = d_N / (d_P + eps) with cosine distances to class prototypes (module docstring).

    Row blocks: memory is the normalised embeddings plus one (block, K) distance matrix.

    Returns
    -------
    (N,) float64 > 0. Higher = more separable = easier; below 1 the sample is closer to another
    class's prototype than to its own.
    """
    x = l2_normalize(check_embeddings(embeddings))
    y = check_labels(labels, x.shape[0])
    classes, own = np.unique(y, return_inverse=True)
    if classes.size < 2:
        raise ValueError("separability needs at least two classes")
    protos = _prototypes(x, own, classes.size)
    out = np.empty(y.size)
    for rows in row_blocks(y.size):
        dist = 1.0 - (x[rows] @ protos.T).astype(np.float64)  # (block, K); K = classes, small
        mine = own[rows]
        at = np.arange(mine.size)
        d_pos = dist[at, mine]
        dist[at, mine] = np.inf
        out[rows] = dist.min(axis=1) / (np.maximum(d_pos, 0.0) + eps)
    return out


def integrity(norms: np.ndarray) -> np.ndarray:
    """e = ||f(x)||_2 as stored in the ``norm`` column. (N,) float64 >= 0; higher = better."""
    e = np.asarray(norms, dtype=np.float64)
    if e.ndim != 1 or e.size == 0 or not np.isfinite(e).all() or (e < 0).any():
        raise ValueError("norms must be a non-empty (N,) array of finite non-negative values")
    return e


def jensen_shannon(probs_by_model: np.ndarray) -> np.ndarray:
    """Generalised JSD of K distributions per sample, divided by log K: (N,) in [0, 1].

    ``probs_by_model`` is (K, N, C) with rows summing to 1 (K >= 2 models).
    """
    p = np.asarray(probs_by_model, dtype=np.float64)
    if p.ndim != 3 or p.shape[0] < 2:
        raise ValueError(f"probs_by_model must be (K >= 2, N, C), got shape {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any():
        raise ValueError("probs_by_model must hold finite non-negative probabilities")
    p = p / np.maximum(p.sum(axis=-1, keepdims=True), 1e-300)

    def entropy(q: np.ndarray) -> np.ndarray:
        return -(np.where(q > 0, q * np.log(np.where(q > 0, q, 1.0)), 0.0)).sum(axis=-1)

    jsd = entropy(p.mean(axis=0)) - entropy(p).mean(axis=0)
    return np.clip(jsd / np.log(p.shape[0]), 0.0, 1.0)


def model_certainty(probs_by_model: np.ndarray) -> np.ndarray:
    """c = 1 - normalised JSD across K probes' predictions. (N,) in [0, 1]; higher = the probes
    agree = more certain; lower = uncertain."""
    return 1.0 - jensen_shannon(probs_by_model)


def _quantiles(values: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    if labels is None:
        return rank_quantile(values)
    q = np.empty(values.size)
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        q[members] = rank_quantile(values[members])
    return q


def sims_score(
    *,
    separability: np.ndarray,
    integrity: np.ndarray | None = None,
    certainty: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> np.ndarray:
    """Combine the SIM terms into one score in (0, 1] (module docstring for the choices).

    Parameters
    ----------
    separability, integrity, certainty : (N,) arrays, each higher = easier / cleaner; integrity
        and certainty may be None (left out, e.g. no norms stored or a single probe).
    labels : (N,) int; when given, quantiles are taken within each class.
    weights : exponents of the (separability, integrity, certainty) quantiles.

    Returns
    -------
    (N,) float64 in (0, 1]. Higher = easier / more prototypical / cleaner; the difficulty used
    by the pruning procedures is 1 - score.
    """
    terms = {"separability": separability, "integrity": integrity, "certainty": certainty}
    n = np.asarray(separability).size
    y = None if labels is None else check_labels(labels, n)
    log_sum = np.zeros(n)
    total = 0.0
    for (name, values), w in zip(terms.items(), weights, strict=True):
        if values is None or w == 0:
            continue
        if w < 0:
            raise ValueError(f"weights must be >= 0, got {weights}")
        v = np.asarray(values, dtype=np.float64)
        if v.shape != (n,) or not np.isfinite(v).all():
            raise ValueError(f"{name} must be a finite ({n},) array, got shape {v.shape}")
        q = np.maximum(_quantiles(v, y), QUANTILE_FLOOR)
        log_sum += w * np.log(q)
        total += w
    if total == 0:
        raise ValueError("at least one SIM term needs a positive weight")
    return np.exp(log_sum / total)
