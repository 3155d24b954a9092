"""Proxy models ("probes") trained on stored embeddings: training dynamics and out-of-fold probs.

Users rarely have per-epoch logits of their own model, so the scoring engine trains small proxies
on the embeddings instead: a linear probe (multinomial logistic regression) or an MLP with one
hidden layer + ReLU. Two products come out of them:

* :func:`train_dynamics`: one probe trained on all samples (one seed), with every sample's logits
  recorded after every epoch (EL2N, forgetting, AUM, cartography, dynamic uncertainty read these)
  and optionally the penultimate features (neural-collapse curves read those).
* :func:`cross_fit_probs` / :func:`out_of_fold_probs`: K-fold cross-fitted softmax probabilities,
  where each sample's prediction comes from a probe that never saw it (confident learning needs
  these), averaged over seeds.

Every function takes and returns plain NumPy arrays, so logits imported from a user's own model
(E, N, C) flow through the same scorers as the probes' ``TrainingDynamics.logits``.

Optimisation defaults (``ProbeConfig``): SGD with momentum 0.9, lr 0.05, weight decay 5e-4 on all
parameters, batch 128, 30 epochs, cosine decay of the learning rate from ``lr`` to 0 over all
steps. SGD + momentum is what the training-dynamics papers (Toneva et al. 2019, Paul et al. 2021,
Pleiss et al. 2020) use, and on z-scored features it needs no tuning per dataset.

Seeds: the out-of-fold probabilities and the dynamics average 3 probe seeds (``ProbeConfig.seeds``).
Paul et al. 2021 average EL2N over 10 runs; on the pruning benchmark's validation splits, scores
from 10 seeds were no better for the recommended default (paired, 30 runs: -0.14 +- 0.09 /
-0.11 +- 0.07 / +0.07 +- 0.09 / -0.12 +- 0.13 points at removed 0.3 / 0.5 / 0.7 / 0.9,
``bench/pruning.py --alternatives``) for 3.3x the probe time, so 3 stay.

Determinism: all randomness (initialisation, minibatch order) comes from a ``torch.Generator``
seeded from ``seed`` (and the fold index), never from the global RNG, so the same inputs and seed
give bit-identical outputs on CPU (probes train with one intra-op thread by default, see
``ProbeConfig.cpu_threads``, so the core count does not change the float reductions). On CUDA
results are reproducible up to the usual non-determinism of GPU reductions.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import KFold, StratifiedKFold

from backend.scoring.probe_models import (
    ProbeNet,
    cpu_threads,
    fit_probe,
    forward_into,
    resolve_device,
    sub_seed,
)

log = logging.getLogger(__name__)

KINDS = ("linear", "mlp")
LR_SCHEDULES = ("cosine", "constant")


@dataclass(frozen=True)
class ProbeConfig:
    """Settings of a proxy model; see the module docstring for why these defaults.

    ``kind`` is ``"linear"`` (penultimate features = the standardized inputs) or ``"mlp"`` (one
    hidden layer of ``hidden`` units + ReLU; penultimate features = the hidden activations).
    ``standardize`` z-scores the features with the statistics of the rows the probe trains on.
    ``device`` None picks ``"cuda"`` when available, else ``"cpu"``. ``cpu_threads``: torch
    intra-op threads while a probe trains on CPU (restored afterwards; None leaves torch's
    setting alone); 1 by default because these matrices are too small to gain from threads
    (see :func:`backend.scoring.probe_models.cpu_threads` for the measurement).
    """

    kind: str = "mlp"
    hidden: int = 128
    epochs: int = 30
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128
    n_folds: int = 5
    seeds: tuple[int, ...] = (0, 1, 2)
    device: str | None = None
    standardize: bool = True
    lr_schedule: str = "cosine"
    cpu_threads: int | None = 1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown probe kind {self.kind!r}; choose one of {', '.join(KINDS)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(
                f"unknown lr_schedule {self.lr_schedule!r}; choose one of {', '.join(LR_SCHEDULES)}"
            )
        for name in ("hidden", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"ProbeConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.cpu_threads is not None and self.cpu_threads < 1:
            raise ValueError(
                f"ProbeConfig.cpu_threads must be >= 1 or None, got {self.cpu_threads}"
            )
        if self.n_folds < 2:
            raise ValueError(f"ProbeConfig.n_folds must be >= 2, got {self.n_folds}")
        if len(self.seeds) == 0:
            raise ValueError("ProbeConfig.seeds must name at least one seed")
        if self.lr <= 0 or self.weight_decay < 0 or not 0 <= self.momentum < 1:
            raise ValueError("ProbeConfig needs lr > 0, weight_decay >= 0 and 0 <= momentum < 1")


@dataclass
class TrainingDynamics:
    """What one probe run recorded. E epochs, N samples, C classes, H penultimate width.

    ``logits`` (E, N, C) float32: every training sample's logits after each epoch (eval mode).
    ``features`` (E, N, H) float32 penultimate features per epoch, or None when not recorded; for
    a linear probe these are the standardized inputs, identical every epoch (a read-only
    broadcast view, no copy). ``weights`` (E, C, H) and ``biases`` (E, C): the last layer per
    epoch. ``train_accuracy`` (E,): argmax of ``logits`` equal to the given label.
    ``input_mean`` / ``input_scale`` (D,) are the standardization used (zeros / ones if off);
    ``hidden_weight`` (H, D) / ``hidden_bias`` (H,) the final hidden layer of an MLP probe (None
    for a linear probe). :func:`predict_logits` uses them to score new rows.
    """

    logits: np.ndarray
    features: np.ndarray | None
    weights: np.ndarray
    biases: np.ndarray
    train_accuracy: np.ndarray
    input_mean: np.ndarray | None = None
    input_scale: np.ndarray | None = None
    hidden_weight: np.ndarray | None = None
    hidden_bias: np.ndarray | None = None


def _validate(
    features: np.ndarray, labels: np.ndarray, n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(features)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"features must be a non-empty (N, D) array, got shape {x.shape}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise ValueError("features contain NaN or infinite values")
    y = np.asarray(labels)
    if y.shape != (x.shape[0],):
        raise ValueError(f"labels must have shape ({x.shape[0]},) to match features, got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integers 0..n_classes-1, got dtype {y.dtype}")
    if n_classes < 2:
        raise ValueError(f"n_classes must be >= 2, got {n_classes}")
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(
            f"labels must lie in 0..{n_classes - 1} (n_classes={n_classes}), "
            f"got values in {int(y.min())}..{int(y.max())}"
        )
    return x, y.astype(np.int64)


#: Rows per block of the column standard deviation (see :func:`_column_std`).
STD_BLOCK_ROWS = 65_536


def _standardizer(x: np.ndarray, enabled: bool) -> tuple[np.ndarray, np.ndarray]:
    """Column mean and scale (float32); constant columns get scale 1."""
    if not enabled:
        return np.zeros(x.shape[1], np.float32), np.ones(x.shape[1], np.float32)
    mean = x.mean(axis=0, dtype=np.float64)
    std = _column_std(x, mean)
    std[std < 1e-8 * max(1.0, float(np.abs(mean).max()))] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


def _column_std(x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Population std per column (float64), in blocks of ``STD_BLOCK_ROWS`` rows.

    ``x.std(axis=0, dtype=np.float64)`` materialises the float64 deviations of the whole matrix:
    4 GB at 1M x 512, which set the score job's peak RSS at 1M rows (11 GB, ``bench/scale.py``).
    The same arithmetic per block needs one block. Up to ``STD_BLOCK_ROWS`` rows (every
    probe below the score job's large-N threshold) it is bit-identical to ``np.std``; above,
    the block sums are added in another order (relative differences ~1e-16).
    """
    total = None
    for start in range(0, x.shape[0], STD_BLOCK_ROWS):
        dev = x[start : start + STD_BLOCK_ROWS] - mean  # float64, like np.std's deviations
        np.multiply(dev, dev, out=dev)
        part = dev.sum(axis=0)
        total = part if total is None else total + part
    return np.sqrt(total / x.shape[0])


def train_dynamics(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    n_classes: int,
    config: ProbeConfig,
    seed: int,
    record_features: bool = False,
    sample_weight: np.ndarray | None = None,
    logits_out: np.ndarray | None = None,
    features_out: np.ndarray | None = None,
    record_logits: bool = True,
    standardize_in_place: bool = False,
) -> TrainingDynamics:
    """Train one probe on all rows (one seed), recording every sample's logits at every epoch.

    Parameters
    ----------
    features : (N, D) float array of embeddings.
    labels : (N,) int array in 0..n_classes-1. May use classes beyond the real ones (AUM's
        threshold samples get an extra fake class: pass ``n_classes = C + 1``).
    n_classes : number of output units C.
    config : probe settings; ``config.seeds`` / ``n_folds`` are not used here, ``seed`` is.
    record_features : also keep the (E, N, H) penultimate features (memory: E*N*H*4 bytes).
    sample_weight : optional (N,) non-negative loss weights, rescaled to mean 1.
    logits_out, features_out : optional preallocated (E, N, C) / (E, N, H) arrays that receive
        the recordings instead of fresh float32 arrays, e.g. an ``np.memmap`` or float16 array
        when E*N*C*4 bytes would not fit in memory (``features_out`` only for an MLP probe).
    record_logits : False skips the per-epoch logits (``logits`` is then an empty (0, N, C)
        array and ``train_accuracy`` NaN); the last layer per epoch is still kept, so
        :func:`predict_logits` works. For callers that only predict held-out rows (the
        label-noise cleaning round): at 1M rows x 100 classes x 8 epochs the recording is 2 GB
        per fold and one extra forward pass per epoch. Training is unchanged (bit-identical).
    standardize_in_place : standardise ``features`` in place (when it is already C-contiguous
        float32) instead of into a copy, for a caller that owns the array and is done with it
        (the score job's last probe: saves one N x D float32 copy, 2 GB at 1M x 512).

    Returns
    -------
    TrainingDynamics with ``logits`` (E, N, C) (float32 unless ``logits_out`` says otherwise)
    and the last layer per epoch; logits are written one epoch at a time in chunks of rows,
    without autograd graphs.
    """
    x_np, y_np = _validate(features, labels, n_classes)
    weight_t = None
    device = resolve_device(config.device)
    if sample_weight is not None:
        w = np.asarray(sample_weight, dtype=np.float64)
        if w.shape != y_np.shape or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ValueError("sample_weight must be (N,) finite, non-negative, not all zero")
        weight_t = torch.from_numpy((w / w.mean()).astype(np.float32)).to(device)
    mean, scale = _standardizer(x_np, config.standardize)
    if standardize_in_place:
        x_std = x_np
        x_std -= mean
    else:
        x_std = x_np - mean  # in place below: one N x D copy, not two (same values as (x - m) / s)
    x_std /= scale
    x = torch.from_numpy(x_std).to(device)
    y = torch.from_numpy(y_np).to(device)
    n, d = x_np.shape
    width = d if config.kind == "linear" else config.hidden
    e = config.epochs
    logits = (_output_array(logits_out, (e, n, n_classes), "logits_out") if record_logits
              else np.empty((0, n, n_classes), np.float32))
    recorded = None
    if record_features and config.kind == "mlp":
        recorded = _output_array(features_out, (e, n, width), "features_out")
    accuracy = np.empty(e)
    weights = np.empty((e, n_classes, width), np.float32)
    biases = np.empty((e, n_classes), np.float32)

    def record(epoch: int, model: ProbeNet) -> None:
        weights[epoch] = model.head.weight.detach().float().cpu().numpy()
        biases[epoch] = model.head.bias.detach().float().cpu().numpy()
        if not record_logits:
            accuracy[epoch] = np.nan
            return
        forward_into(model, x, logits[epoch], None if recorded is None else recorded[epoch])
        accuracy[epoch] = (np.asarray(logits[epoch]).argmax(axis=1) == y_np).mean()

    with cpu_threads(config.cpu_threads, device):
        model = fit_probe(
            x, y, weight_t, n_classes=n_classes, config=config, seed=seed, on_epoch=record
        )
    if record_features and config.kind == "linear":
        recorded = np.broadcast_to(x_std, (e, n, d))
    hidden_w = hidden_b = None
    if model.body is not None:
        first = model.body[0]
        hidden_w = first.weight.detach().float().cpu().numpy()
        hidden_b = first.bias.detach().float().cpu().numpy()
    return TrainingDynamics(
        logits=logits,
        features=recorded,
        weights=weights,
        biases=biases,
        train_accuracy=accuracy,
        input_mean=mean,
        input_scale=scale,
        hidden_weight=hidden_w,
        hidden_bias=hidden_b,
    )


def _output_array(out: np.ndarray | None, shape: tuple[int, ...], name: str) -> np.ndarray:
    if out is None:
        return np.empty(shape, np.float32)
    if out.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {out.shape}")
    return out


def predict_logits(
    dynamics: TrainingDynamics, features: np.ndarray, *, epoch: int = -1
) -> np.ndarray:
    """Logits (N, C) float32 of new rows under a recorded probe.

    A linear probe can be evaluated at any recorded ``epoch``; an MLP only at the last one (its
    hidden layer is stored for the final epoch only), other epochs raise ValueError.
    """
    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"features must be (N, D), got shape {x.shape}")
    n_epochs = dynamics.weights.shape[0]
    if not -n_epochs <= epoch < n_epochs:
        raise ValueError(f"epoch {epoch} out of range for {n_epochs} recorded epochs")
    mean = dynamics.input_mean if dynamics.input_mean is not None else 0.0
    scale = dynamics.input_scale if dynamics.input_scale is not None else 1.0
    hidden = ((x - mean) / scale).astype(np.float64)
    if dynamics.hidden_weight is not None:
        if epoch % n_epochs != n_epochs - 1:
            raise ValueError("an MLP probe keeps its hidden layer for the last epoch only")
        hidden = np.maximum(hidden @ dynamics.hidden_weight.T + dynamics.hidden_bias, 0.0)
    return (hidden @ dynamics.weights[epoch].T + dynamics.biases[epoch]).astype(np.float32)


def cv_folds(y: np.ndarray, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified shuffled folds; plain shuffled K-fold when no class has ``n_folds`` members."""
    n = y.shape[0]
    if n < 2:
        raise ValueError("cross-fitting needs at least 2 samples")
    k = min(n_folds, n)
    counts = np.bincount(y)
    counts = counts[counts > 0]
    if counts.max() >= k:
        if counts.min() < k:
            log.info("a class has %d < %d members; some folds miss it", counts.min(), k)
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed % 2**32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "least populated class" warning
            return list(splitter.split(np.zeros(n), y))
    log.info("no class has %d members; falling back to unstratified K-fold", k)
    return list(KFold(n_splits=k, shuffle=True, random_state=seed % 2**32).split(np.zeros(n)))


#: ``task_map(fn, tasks, shared=(...))`` yields ``(index, fn(*shared, *tasks[index]))`` for every
#: task, in any order: :func:`serial_tasks` here, or a job runner's ``map_unordered`` (Ray workers,
#: ``backend.jobs.runner``). The probes' folds and seeds are independent tasks; results do not
#: depend on the order or the process that ran them.
TaskMap = Callable[..., Iterable[tuple[int, Any]]]


def serial_tasks(fn: Callable[..., Any], tasks: Sequence[tuple], *, shared: tuple = ()
                 ) -> Iterator[tuple[int, Any]]:
    """The default :data:`TaskMap`: the tasks one after the other, in this process."""
    for index, task in enumerate(tasks):
        yield index, fn(*shared, *task)


def fold_tasks(y: np.ndarray, config: ProbeConfig) -> tuple[list[tuple], list[int]]:
    """The tasks ``(seed, fold, train_idx, test_idx)`` for every fold (:func:`cv_folds`) of each
    of ``config.seeds``, and for each task the position of its seed in ``config.seeds``."""
    tasks: list[tuple] = []
    slots: list[int] = []
    for slot, seed in enumerate(config.seeds):
        for fold, (train_idx, test_idx) in enumerate(cv_folds(y, config.n_folds, seed)):
            tasks.append((seed, fold, train_idx, test_idx))
            slots.append(slot)
    return tasks, slots


def held_out_probs(
    features: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    config: ProbeConfig,
    seed: int,
    fold: int,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
) -> np.ndarray:
    """Softmax probabilities (len(test_idx), C) float32 of the rows ``test_idx`` under a fresh
    probe (seed ``sub_seed(seed, fold)``) trained on the rows ``train_idx`` and standardised
    with their statistics: one fold of :func:`cross_fit_probs`, a task of its ``task_map``.
    ``features`` / ``labels`` are already validated (``_validate``) and may be read-only."""
    device = resolve_device(config.device)
    x_train = features[train_idx]  # a copy, standardised in place (one copy instead of three)
    mean, scale = _standardizer(x_train, config.standardize)
    x_train -= mean
    x_train /= scale
    x_train = torch.from_numpy(x_train).to(device)
    y_train = torch.from_numpy(labels[train_idx]).to(device)
    x_test = features[test_idx]
    x_test -= mean
    x_test /= scale
    x_test = torch.from_numpy(x_test).to(device)
    fold_logits = np.empty((test_idx.size, n_classes), np.float32)
    with cpu_threads(config.cpu_threads, device):
        model = fit_probe(
            x_train, y_train, None, n_classes=n_classes, config=config, seed=sub_seed(seed, fold)
        )
        forward_into(model, x_test, fold_logits, None)
    return softmax(fold_logits)


def cross_fit_probs(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    n_classes: int,
    config: ProbeConfig,
    seed: int,
    task_map: TaskMap | None = None,
) -> np.ndarray:
    """Out-of-fold softmax probabilities (N, C) float32, rows sum to 1, from one seed.

    Algorithm
    ---------
    1. ``StratifiedKFold(n_folds, shuffle=True, random_state=seed)``; classes with fewer members
       than folds stay in a few folds only (and are absent from some training folds); when no
       class reaches ``n_folds`` members, unstratified shuffled K-fold; ``n_folds`` is capped at N.
    2. Per fold (:func:`held_out_probs`, one task of ``task_map``): standardize with the training
       folds' statistics, train a fresh probe (seed derived from ``seed`` and the fold index) on
       the other folds, predict the held-out fold.
    Used by confident learning (Northcutt et al. 2021), which needs out-of-sample probabilities.
    """
    config_one = _one_seed(config, seed)
    return out_of_fold_probs_by_seed(features, labels, n_classes=n_classes, config=config_one,
                                     task_map=task_map)[0]


def _one_seed(config: ProbeConfig, seed: int) -> ProbeConfig:
    return replace(config, seeds=(seed,))


def out_of_fold_probs_by_seed(
    features: np.ndarray, labels: np.ndarray, *, n_classes: int, config: ProbeConfig,
    task_map: TaskMap | None = None,
    fold_fn: Callable[..., np.ndarray] | None = None,
    train_mask: np.ndarray | None = None,
) -> np.ndarray:
    """(S, N, C) float32: :func:`cross_fit_probs` for each of ``config.seeds`` (S seeds).

    The per-seed stack feeds disagreement measures across probes (SIMS model uncertainty). The
    S x K folds are independent tasks of ``task_map`` (default: one after the other here).
    ``fold_fn`` (default :func:`held_out_probs`, same arguments) trains and predicts one fold;
    ``train_mask`` (N,) bool keeps only those rows in every fold's training part (the held-out
    rows still get predictions).
    """
    x_np, y_np = _validate(features, labels, n_classes)
    tasks, slots = fold_tasks(y_np, config)
    if train_mask is not None:
        mask = np.asarray(train_mask, bool)
        tasks = [(seed, fold, train_idx[mask[train_idx]], test_idx) for seed, fold, train_idx, test_idx in tasks]
    probs = np.empty((len(config.seeds), x_np.shape[0], n_classes), np.float32)
    for index, fold_probs in (task_map or serial_tasks)(fold_fn or held_out_probs, tasks,
                                                          shared=(x_np, y_np, n_classes, config)):
        probs[slots[index], tasks[index][3]] = fold_probs
    return probs


def out_of_fold_probs(
    features: np.ndarray, labels: np.ndarray, *, n_classes: int, config: ProbeConfig,
    task_map: TaskMap | None = None,
    fold_fn: Callable[..., np.ndarray] | None = None,
    train_mask: np.ndarray | None = None,
) -> np.ndarray:
    """(N, C) float32 out-of-fold probabilities averaged over ``config.seeds``; rows sum to 1.
    ``fold_fn`` / ``train_mask``: as :func:`out_of_fold_probs_by_seed`."""
    by_seed = out_of_fold_probs_by_seed(features, labels, n_classes=n_classes, config=config,
                                        task_map=task_map, fold_fn=fold_fn, train_mask=train_mask)
    return by_seed.mean(axis=0, dtype=np.float64).astype(np.float32)


def softmax(logits: np.ndarray, *, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax (float32) over ``axis``; works on (N, C) and (E, N, C) logits."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=axis, keepdims=True)
    return z.astype(np.float32)
