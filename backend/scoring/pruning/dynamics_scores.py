"""Pruning scores from training dynamics: per-epoch logits of every training sample.

Every function takes plain arrays: ``logits`` of shape (E, N, C) (E epochs, N samples, C classes)
from one training run, or (S, E, N, C) from S runs with different seeds (scores are averaged over
the runs, as the papers do). The logits can come from the engine's probes
(``backend.scoring.probes.train_dynamics(...).logits``) or from a user's own model (imported per
epoch), so both flow through the same code. ``labels`` are the given labels (N,) int.

Direction convention: each docstring says which end is "harder / more important to keep".
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from backend.scoring.pruning._common import as_runs, best_other, check_labels, softmax, true_class


def default_early_epoch(n_epochs: int) -> int:
    """The epoch index EL2N / GraNd read by default: 10% into training (Paul et al. 2021 score
    at epoch 20 of 200), at least the first epoch: ``max(1, round(0.1 * E)) - 1``."""
    return max(1, round(0.1 * n_epochs)) - 1


def _pick_epoch(runs: np.ndarray, epoch: int | None) -> int:
    n_epochs = runs.shape[1]
    e = default_early_epoch(n_epochs) if epoch is None else epoch
    if not -n_epochs <= e < n_epochs:
        raise ValueError(f"epoch {e} out of range for {n_epochs} recorded epochs")
    return e


def el2n_score(logits: np.ndarray, labels: np.ndarray, *, epoch: int | None = None) -> np.ndarray:
    """EL2N: L2 norm of the error vector softmax(z) - onehot(y) early in training.

    Paul, Ganguli & Dziugaite 2021, "Deep Learning on a Data Diet: Finding Important Examples
    Early in Training" (NeurIPS).

    Parameters
    ----------
    logits : (E, N, C) or (S, E, N, C) per-epoch logits (S seeds; the score is their mean).
    labels : (N,) int given labels.
    epoch : epoch index to read (negative counts from the end); default
        :func:`default_early_epoch` (10% into training).

    Returns
    -------
    (N,) float64 in [0, sqrt(2)]. Higher = harder / more important to keep.
    """
    runs = as_runs(logits)
    y = check_labels(labels, runs.shape[2], runs.shape[3])
    probs = softmax(runs[:, _pick_epoch(runs, epoch)])  # (S, N, C)
    err = probs.copy()
    err[:, np.arange(y.size), y] -= 1.0
    return np.linalg.norm(err, axis=-1).mean(axis=0)


def grand_score(
    logits: np.ndarray,
    features: np.ndarray,
    labels: np.ndarray,
    *,
    epoch: int | None = None,
) -> np.ndarray:
    """GraNd, last-layer closed form: norm of the loss gradient w.r.t. the classifier (W, b).

    Paul, Ganguli & Dziugaite 2021 (NeurIPS). For cross-entropy on z = W h + b the gradient is
    (p - y) [h; 1]^T, a rank-one matrix, so its Frobenius norm is ||p - y|| * sqrt(||h||^2 + 1).
    (The paper's GraNd sums over all parameters; restricting to the last layer is the standard
    cheap proxy and needs only penultimate features.)

    Parameters
    ----------
    logits : (E, N, C) or (S, E, N, C) per-epoch logits.
    features : penultimate features with matching leading axes, (E, N, H) or (S, E, N, H).
    labels : (N,) int given labels.
    epoch : epoch index; default :func:`default_early_epoch`.

    Returns
    -------
    (N,) float64 >= 0, averaged over seeds. Higher = harder / more important to keep.
    """
    runs = as_runs(logits)
    feats = np.asarray(features)
    if feats.ndim == 3:
        feats = feats[None]
    if feats.shape[:3] != runs.shape[:3]:
        raise ValueError(
            f"features {feats.shape} must share (seeds, epochs, N) with logits {runs.shape}"
        )
    e = _pick_epoch(runs, epoch)
    y = check_labels(labels, runs.shape[2], runs.shape[3])
    probs = softmax(runs[:, e])
    probs[:, np.arange(y.size), y] -= 1.0
    h = feats[:, e].astype(np.float64)
    return (np.linalg.norm(probs, axis=-1) * np.sqrt((h * h).sum(axis=-1) + 1.0)).mean(axis=0)


def forgetting_events(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Number of forgetting events per sample; never-learned samples count as most forgotten.

    Toneva et al. 2019, "An Empirical Study of Example Forgetting during Deep Neural Network
    Learning" (ICLR).

    Algorithm
    ---------
    1. correct[e, i] = argmax logits[e, i] == y_i, read once per epoch (the paper reads it at
       each minibatch presentation; per-epoch evaluation is the usual proxy).
    2. A forgetting event is a transition correct -> incorrect between consecutive epochs.
    3. A sample never classified correctly in a run gets E events for that run: more than any
       learned sample can have (at most ceil((E - 1) / 2)), as the paper sorts them as
       "forgotten infinitely often".
    4. Mean over seeds.

    Returns
    -------
    (N,) float64 >= 0. Higher = harder / more important to keep; 0 = unforgettable.
    """
    runs = as_runs(logits)
    y = check_labels(labels, runs.shape[2], runs.shape[3])
    correct = runs.argmax(axis=-1) == y  # (S, E, N)
    events = (correct[:, :-1] & ~correct[:, 1:]).sum(axis=1).astype(np.float64)
    never = ~correct.any(axis=1)
    events[never] = runs.shape[1]
    return events.mean(axis=0)


def aum_margin(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Area under the margin: mean over epochs of z_y - max_{c != y} z_c (raw logits).

    Pleiss et al. 2020, "Identifying Mislabeled Data using the Area Under the Margin Ranking"
    (NeurIPS). Used here as a difficulty score (no threshold samples; the label-noise detector
    with fake-class threshold samples lives in ``backend.scoring.label_noise``).

    Returns
    -------
    (N,) float64, any real value, averaged over seeds. Lower = harder (negative = the model
    mostly prefers another class: hard or mislabeled); higher = easy.
    """
    runs = as_runs(logits)
    y = check_labels(labels, runs.shape[2], runs.shape[3])
    margin = true_class(runs, y) - best_other(runs, y)[0]  # (S, E, N)
    return margin.mean(axis=(0, 1))


def dynamic_uncertainty(logits: np.ndarray, labels: np.ndarray, *, window: int = 10) -> np.ndarray:
    """Dynamic uncertainty: mean over sliding windows of the std of the true-class probability.

    He, Yang, Huang & Zhao 2023, "Large-scale Dataset Pruning with Dynamic Uncertainty"
    (CVPR-W / arXiv 2306.05175); window J = 10 as in the paper.

    Algorithm
    ---------
    1. p[e, i] = softmax(logits[e, i])[y_i].
    2. For every window of ``window`` consecutive epochs k..k+J-1 (k = 0..E-J), U_k = std of p
       over the window (population std; the sample std only rescales every score by one
       constant and leaves the ranking unchanged).
    3. Score = mean over windows, then over seeds. With fewer than J epochs, one window of all
       epochs is used.

    Returns
    -------
    (N,) float64 in [0, 0.5]. Higher = more uncertain = more important to keep.
    """
    if window < 2:
        raise ValueError(f"window must be >= 2 epochs, got {window}")
    runs = as_runs(logits)
    y = check_labels(labels, runs.shape[2], runs.shape[3])
    p = true_class(softmax(runs), y)  # (S, E, N)
    n_epochs = p.shape[1]
    j = min(window, n_epochs)
    # (S, E-J+1, N, J) windows without copying
    windows = np.lib.stride_tricks.sliding_window_view(p, j, axis=1)
    return windows.std(axis=-1).mean(axis=(0, 1))


def tdds_score(
    logits: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    trajectory: int | None = None,
    window: int = 10,
    decay: float = 0.9,
) -> np.ndarray:
    """TDDS: temporal dual-depth score, the variability of a sample's per-epoch contribution.

    Zhang, Du, Li, Xie & Zhou 2024, "Spanning Training Progress: Temporal Dual-Depth Scoring
    (TDDS) for Enhanced Dataset Pruning" (CVPR; arXiv 2311.13613).

    Algorithm
    ---------
    1. p_t = softmax(logits at epoch t), for the first T = ``trajectory`` epochs.
    2. Depth one, the contribution of epoch t -> t+1 (the paper's KL proxy for the projected
       gradient): g_t = sum_c | p_{t+1,c} * (log p_{t+1,c} - log p_{t,c}) |.
    3. Depth two, for every window of K = ``window`` consecutive contributions
       g_k..g_{k+K-1}: R_k = || g - mean(g) ||_2 over the window (its spread).
    4. Exponential moving average over windows, later windows weighted more:
       score = sum_k decay * (1 - decay) ** (n_windows - 1 - k) * R_k. Mean over seeds.

    Choices (the paper tunes T per dataset on long CIFAR/ImageNet schedules): ``trajectory``
    None = every recorded epoch, since the engine's probes train for a short, complete schedule
    (30 epochs); K = 10 and decay 0.9; when fewer than K + 1 epochs are recorded the window
    shrinks to all contributions. ``labels`` are not read (TDDS looks at the whole predicted
    distribution); the argument exists so every dynamics score has the same call shape.

    Returns
    -------
    (N,) float64 >= 0. Higher = more important to keep (the paper keeps the highest).
    """
    del labels
    if window < 2:
        raise ValueError(f"window must be >= 2 epoch transitions, got {window}")
    if not 0.0 < decay <= 1.0:
        raise ValueError(f"decay must lie in (0, 1], got {decay}")
    runs = as_runs(logits)
    n_epochs = runs.shape[1]
    t = n_epochs if trajectory is None else int(trajectory)
    if not 2 <= t <= n_epochs:
        raise ValueError(f"trajectory must lie in [2, {n_epochs}] recorded epochs, got {t}")
    p = softmax(runs[:, :t])  # (S, T, N, C)
    logp = np.log(p + 1e-8)
    g = np.abs(p[:, 1:] * (logp[:, 1:] - logp[:, :-1])).sum(axis=-1)  # (S, T-1, N)
    k = min(window, g.shape[1])
    windows = np.lib.stride_tricks.sliding_window_view(g, k, axis=1)  # (S, W, N, K)
    spread = np.linalg.norm(windows - windows.mean(axis=-1, keepdims=True), axis=-1)  # (S, W, N)
    n_windows = spread.shape[1]
    weights = decay * (1.0 - decay) ** np.arange(n_windows - 1, -1, -1, dtype=np.float64)
    return np.einsum("w,swn->sn", weights, spread).mean(axis=0)


class Cartography(NamedTuple):
    """Dataset-cartography coordinates (Swayamdipta et al. 2020), each (N,) float64 in [0, 1]
    (variability in [0, 0.5]): ``confidence`` = mean true-class probability over epochs (low =
    hard-to-learn), ``variability`` = its std (high = ambiguous), ``correctness`` = fraction of
    epochs where the argmax equals the label."""

    confidence: np.ndarray
    variability: np.ndarray
    correctness: np.ndarray


def cartography(logits: np.ndarray, labels: np.ndarray) -> Cartography:
    """Confidence, variability and correctness across epochs, averaged over seeds.

    Swayamdipta et al. 2020, "Dataset Cartography: Mapping and Diagnosing Datasets with Training
    Dynamics" (EMNLP). Population std over epochs as in the paper's code. Direction: low
    confidence = hard; high variability = ambiguous = most useful to keep (the paper's finding).
    """
    runs = as_runs(logits)
    y = check_labels(labels, runs.shape[2], runs.shape[3])
    p = true_class(softmax(runs), y)  # (S, E, N)
    correct = runs.argmax(axis=-1) == y
    return Cartography(
        confidence=p.mean(axis=1).mean(axis=0),
        variability=p.std(axis=1).mean(axis=0),
        correctness=correct.mean(axis=1).mean(axis=0),
    )
