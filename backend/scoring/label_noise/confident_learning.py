"""Confident learning (Northcutt, Jiang & Chuang 2021, JAIR 70, "Confident Learning: Estimating
Uncertainty in Dataset Labels"), written in-house.

Inputs everywhere: ``given_labels`` (N,) integers in [0, C) and out-of-fold ``pred_probs`` (N, C)
(rows sum to 1, each row predicted by a model that did not train on that row). The flags of
:func:`find_label_issues` equal those of ``cleanlab.filter.find_label_issues`` (cleanlab 2.x) for
the same inputs and the same ``filter_by`` / ``frac_noise`` / ``min_examples_per_class``, tie
breaks included; ``tests/scoring/test_label_noise_cl.py`` checks this with cleanlab as the
reference. cleanlab itself (AGPL-3.0) is never imported here.

Conventions: C x C count matrices are indexed ``[given label, true label]`` (the paper's
``C_{ỹ, y*}``); quality scores are in [0, 1] and **lower means more likely mislabeled**.
"""

from __future__ import annotations

import logging

import numpy as np

from backend.scoring.class_columns import best_other, true_class

log = logging.getLogger(__name__)

FILTERS = ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning")
_EPS = 1e-6  # tolerance of the threshold comparison and of "prediction equals given label"
_THRESHOLD_FLOOR = 2 * _EPS  # thresholds are clipped from below so the tolerance stays sane
_MISSING_CLASS_THRESHOLD = 2  # above any probability: nothing is counted into an absent class
_TINY = 1e-100


def _check(given_labels: np.ndarray, pred_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(given_labels)
    probs = np.asarray(pred_probs)
    if probs.ndim != 2 or labels.shape != (probs.shape[0],):
        raise ValueError(
            f"need given_labels (N,) and pred_probs (N, C), got {labels.shape} and {probs.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError("given_labels must be integers in [0, C)")
    if labels.size and (labels.min() < 0 or labels.max() >= probs.shape[1]):
        raise ValueError(f"given_labels must lie in [0, {probs.shape[1]})")
    return labels.astype(np.int64, copy=False), probs


def confident_thresholds(given_labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """Per-class thresholds t_j = mean self-confidence of the samples labelled j (paper eq. 2).

    Returns (C,) in [2e-6, 1]; a class with no samples gets 2, so nothing is counted into it.
    """
    labels, probs = _check(given_labels, pred_probs)
    present = set(np.unique(labels).tolist())
    values = [
        np.mean(probs[labels == j, j]) if j in present else _MISSING_CLASS_THRESHOLD
        for j in range(probs.shape[1])
    ]
    return np.clip(values, a_min=_THRESHOLD_FLOOR, a_max=None)


def compute_confident_joint(
    given_labels: np.ndarray,
    pred_probs: np.ndarray,
    *,
    thresholds: np.ndarray | None = None,
    calibrate: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """The confident joint C_{ỹ, y*} (paper section 3.1) and the samples off its diagonal.

    Returns
    -------
    confident_joint
        (C, C) int64, ``[given, true]``. Calibrated (default): each row sums to the count of its
        given label and the total is N (paper eq. 3).
    off_diagonal
        (N,) bool: the sample was counted confidently into a class other than its given label.

    Algorithm
    ---------
    1. A sample is confidently of class j when p_j >= t_j - 1e-6. With one such class that is its
       guessed true label; with several, the argmax of p; with none it is not counted.
    2. Count (given, guessed) pairs; force each diagonal entry to at least 1.
    3. Calibrate (optional): scale each row to its given-label count, then the whole matrix to N,
       and round to integers keeping every row total.
    """
    labels, probs = _check(given_labels, pred_probs)
    n_classes = probs.shape[1]
    t = confident_thresholds(labels, probs) if thresholds is None else np.asarray(thresholds)
    confident = probs >= t - _EPS
    n_confident = confident.sum(axis=1)
    guess = np.where(n_confident > 1, probs.argmax(axis=1), confident.argmax(axis=1))
    counted = n_confident > 0
    # Counted as [true, given] and transposed, so the matrix is column-major: np.sum over it (in
    # the calibration) then adds in the same order as the reference, and float ties round alike.
    pairs = guess[counted] * n_classes + labels[counted]
    joint = np.bincount(pairs, minlength=n_classes * n_classes).reshape(n_classes, n_classes).T
    np.fill_diagonal(joint, joint.diagonal().clip(min=1))
    off_diagonal = counted & (guess != labels)
    if calibrate:
        joint = calibrate_confident_joint(joint, labels)
    return joint.astype(np.int64), off_diagonal


def calibrate_confident_joint(confident_joint: np.ndarray, given_labels: np.ndarray) -> np.ndarray:
    """Scale a (C, C) ``[given, true]`` count matrix so row j sums to #(given = j) and the total is
    N (paper eq. 3); integer counts, rounded row by row preserving the row totals."""
    joint = np.asarray(confident_joint)
    n_classes = joint.shape[0]
    label_counts = np.bincount(np.asarray(given_labels), minlength=n_classes)
    scaled = (joint.T / np.clip(joint.sum(axis=1), a_min=_TINY, a_max=None) * label_counts).T
    scaled = scaled / np.clip(np.sum(scaled), a_min=_TINY, a_max=None) * sum(label_counts)
    return round_preserving_row_totals(scaled)


def round_preserving_row_totals(matrix: np.ndarray) -> np.ndarray:
    """Round each row of a float matrix to integers whose sum is the rounded row total.

    Algorithm (largest remainder, repeated until the totals agree): round every entry; while the
    row sum differs from its rounded total by d, move the |d| entries with the largest (for
    d > 0) or smallest (d < 0) rounding residual one unit towards the total.
    """
    rows = np.asarray(matrix, dtype=float)
    out = np.empty(rows.shape, dtype=np.int64)
    for i, floats in enumerate(rows):
        ints = floats.round()
        target = np.sum(floats).round()
        current = np.sum(ints).round()
        while abs(current - target) > _EPS:
            diff = np.round(target - current)
            step = -1 if diff < 0 else 1
            changes = min(int(abs(diff)), floats.size)
            ints[np.argsort(floats - ints)[::-step][:changes]] += step
            current = np.sum(ints).round()
        out[i] = ints.astype(np.int64)
    return out


def estimate_joint(confident_joint: np.ndarray) -> np.ndarray:
    """Joint distribution Q_{ỹ, y*} (C, C) summing to 1, from a calibrated confident joint."""
    joint = np.asarray(confident_joint, dtype=float)
    return joint / np.clip(joint.sum(), a_min=_TINY, a_max=None)


def estimate_noise_matrices(confident_joint: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Noise matrix and its inverse from a (calibrated) ``[given, true]`` confident joint.

    Returns
    -------
    noise_matrix
        (C, C) P(given = i | true = j); columns sum to 1. Off-diagonal mass = noise rates.
    inverse_noise_matrix
        (C, C) P(true = j | given = i) stored ``[true, given]``; columns sum to 1.

    Plain normalisation of the counts (paper section 3.2); no clipping or convergence loop.
    """
    joint = np.asarray(confident_joint, dtype=float)
    noise = joint / np.clip(joint.sum(axis=0), a_min=_TINY, a_max=None)
    inverse = joint.T / np.clip(joint.sum(axis=1), a_min=_TINY, a_max=None)
    return noise, inverse


def num_label_issues(given_labels: np.ndarray, pred_probs: np.ndarray) -> int:
    """Estimated number of wrong labels: N times the off-diagonal mass of the calibrated joint."""
    joint, _ = compute_confident_joint(given_labels, pred_probs)
    return int(np.rint((1.0 - np.trace(estimate_joint(joint))) * len(given_labels)))


def self_confidence(given_labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """p(given label | x), (N,) in [0, 1]; lower = more likely mislabeled."""
    labels, probs = _check(given_labels, pred_probs)
    return probs[np.arange(labels.size), labels]


def normalized_margin(given_labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """(p(given) - max_{k != given} p(k) + 1) / 2, (N,) in [0, 1]; lower = more likely mislabeled.

    Better than self-confidence when another class is clearly the better label (paper
    section 4; Northcutt et al. "rank by normalized margin").
    """
    labels, probs = _check(given_labels, pred_probs)
    return (true_class(probs, labels) - best_other(probs, labels)[0] + 1) / 2


def find_label_issues(
    given_labels: np.ndarray,
    pred_probs: np.ndarray,
    *,
    filter_by: str = "prune_by_noise_rate",
    frac_noise: float = 1.0,
    min_examples_per_class: int = 1,
) -> np.ndarray:
    """Flag likely label errors with confident learning; (N,) bool, True = likely wrong label.

    ``filter_by`` (paper section 3.3):

    - ``"prune_by_noise_rate"`` (default): for every off-diagonal cell (given i, true j) of the
      calibrated joint, flag that many samples labelled i with the largest margin p_j - p_i.
    - ``"prune_by_class"``: in class i, flag the (N_i - C[i, i]) samples of lowest p_i.
    - ``"both"``: flagged by both rules.
    - ``"confident_learning"``: the off-diagonal samples of the (uncalibrated) confident joint.

    ``frac_noise`` in (0, 1] keeps only that fraction of the counted errors (pruning rules only);
    classes with at most ``min_examples_per_class`` samples are never pruned, and pruning leaves at
    least that many. A sample whose argmax (with a 1e-6 bonus to its given label) is its given label
    is never flagged.

    Algorithm
    ---------
    1. Calibrated confident joint J (given, true) and the off-diagonal samples.
    2. P = J^T adjusted so every true-class diagonal keeps >= min_examples_per_class (the
       shortfall taken evenly from that column's nonzero noise counts), off-diagonals scaled by
       frac_noise with the diagonal taking up the rest, truncated to integers.
    3. Apply the rule per given class; 4. unflag samples predicted as their given label.
    """
    if filter_by not in FILTERS:
        raise ValueError(f"unknown filter_by {filter_by!r}; choose one of {', '.join(FILTERS)}")
    labels, probs = _check(given_labels, pred_probs)
    n_classes = probs.shape[1]
    joint, off_diagonal = compute_confident_joint(labels, probs)
    if filter_by == "confident_learning":
        mask = off_diagonal.copy()
    else:
        prune_counts = _prune_count_matrix(joint.T, min_examples_per_class, frac_noise)
        by_class = by_rate = None
        for k in range(n_classes):
            members = np.flatnonzero(labels == k)
            if members.size <= min_examples_per_class:
                log.warning(
                    "class %d has %d samples (min_examples_per_class=%d): not pruned",
                    k,
                    members.size,
                    min_examples_per_class,
                )
                continue
            class_probs = probs[members]
            if filter_by in ("prune_by_class", "both"):
                by_class = np.zeros(labels.size, bool) if by_class is None else by_class
                n_issues = members.size - prune_counts[k, k]
                if n_issues >= 1:
                    order = np.argsort(class_probs[:, k])
                    by_class[members[order[:n_issues]]] = True
            if filter_by in ("prune_by_noise_rate", "both"):
                by_rate = np.zeros(labels.size, bool) if by_rate is None else by_rate
                for j in range(n_classes):
                    n_prune = prune_counts[j, k]
                    if j != k and n_prune > 0:
                        margin = class_probs[:, j] - class_probs[:, k]
                        order = np.argsort(-margin)
                        by_rate[members[order[:n_prune]]] = True
        empty = np.zeros(labels.size, bool)
        by_class = empty if by_class is None else by_class
        by_rate = empty if by_rate is None else by_rate
        mask = {"prune_by_class": by_class, "prune_by_noise_rate": by_rate}.get(
            filter_by, by_class & by_rate
        )
    bumped = probs.copy()
    bumped[np.arange(labels.size), labels] += _EPS
    mask[bumped.argmax(axis=1) == labels] = False
    return mask


def _prune_count_matrix(prune_counts: np.ndarray, min_keep: int, frac_noise: float) -> np.ndarray:
    """Step 2 of :func:`find_label_issues` on P = J^T ([true, given]); returns int (C, C)."""
    diagonal = np.diagonal(prune_counts)
    new_diagonal = np.maximum(diagonal, min_keep)
    shortfall = new_diagonal - diagonal
    n_noise_cells = np.maximum(np.count_nonzero(prune_counts, axis=0) - 1.0, 1.0)
    adjusted = prune_counts - shortfall / n_noise_cells
    adjusted[adjusted < 0] = 0
    np.fill_diagonal(adjusted, new_diagonal)
    reduced = adjusted * frac_noise
    np.fill_diagonal(reduced, adjusted.diagonal())
    np.fill_diagonal(reduced, adjusted.diagonal() + np.sum(adjusted - reduced, axis=0))
    return round_preserving_row_totals(reduced.astype(int)).astype(np.int64)
