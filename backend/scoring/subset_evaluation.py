"""What a pruned subset costs: held-out accuracy of probes trained on it, with and without
knowledge distillation from a full-data teacher, against a random subset of the same size.

The question a curator asks before exporting a subset is "how much accuracy do I give up by
training on this instead of everything, and is it better than keeping a random sample?".
:func:`evaluate_subset` answers it on the stored embeddings with the engine's own probes, and
adds the recipe of Ben-Baruch et al. 2024 (arXiv 2403.07854): train on the subset with a KD term
from a teacher that saw the complete data (:mod:`backend.scoring.distillation`).

Algorithm
---------
1. Stratified K-fold over the pool (``cv_folds``). Every pool sample is evaluated once, on the
   fold where it is held out, whether the subset kept it or not: the held-out folds are the
   whole data distribution, not the subset's.
2. Per fold, on the other folds' rows:
   * ``full``: a probe on all of them (also the teacher);
   * ``subset``: a probe on the rows the subset keeps;
   * ``subset_kd``: the same rows, loss ``(1 - alpha) CE + alpha tau^2 KL`` with the teacher's
     softened predictions, ``alpha = kd_weight(kept fraction)`` unless given;
   * ``random`` / ``random_kd``: as ``subset`` / ``subset_kd`` on a random sample of the rows
     with the same count per class as the subset keeps there (the baseline a pruning method
     has to beat; Ben-Baruch et al.'s "random pruning + KD").
   Every probe of a fold starts from the same initial weights and takes the same number of SGD
   steps as the full-data probe (:func:`same_steps`; below ~5 % kept the cap of
   ``MAX_EPOCH_FACTOR`` times the epochs binds), so arms differ only in their rows and loss.
3. Accuracy per fold and arm, and recall per class and arm pooled over folds (pruning can cost
   one class much more than the average says).

Higher accuracy is better. Probes standardise their inputs with their own training rows' mean
and scale (a subset probe never sees the statistics of rows it did not keep).

Caveat: a pruned subset was chosen by scores computed on the whole pool, held-out rows included,
so "subset vs random" is mildly optimistic for the subset (its choice saw the test folds' rows;
no probe trained here does). A clean estimate would re-score inside every fold, K times the
score job's cost; the pruning benchmark (``bench/pruning.py``) does score on the training split
only.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import binomtest

from backend.scoring.distillation import KD_TEMPERATURE, kd_weight, soften
from backend.scoring.probe_models import (
    cpu_threads,
    fit_probe,
    forward_into,
    resolve_device,
    sub_seed,
)
from backend.scoring.probes import (
    ProbeConfig,
    TaskMap,
    _standardizer,
    _validate,
    cv_folds,
    serial_tasks,
)

ARMS = ("full", "subset", "subset_kd", "random", "random_kd")
#: A probe on a subset trains for as many SGD steps as the full-data probe, up to this many times
#: its epochs (a probe on 10 % of the rows would otherwise take a tenth of the steps and be judged
#: undertrained rather than badly fed).
MAX_EPOCH_FACTOR = 20


@dataclass
class SubsetEvaluation:
    """Held-out results of :func:`evaluate_subset`. K folds, C classes.

    ``accuracy[arm]`` (K,) fraction of the fold's held-out samples right; ``recall[arm]`` (C,)
    per-class recall pooled over folds (NaN for a class with no sample); ``correct[arm]`` (N,)
    bool, whether each pool sample was right when held out (for paired comparisons);
    ``kept_fraction`` the subset's share of the pool; ``kd_weight`` / ``temperature`` the KD
    settings used.
    """

    accuracy: dict[str, np.ndarray]
    recall: dict[str, np.ndarray]
    correct: dict[str, np.ndarray]
    kept_fraction: float
    kd_weight: float
    temperature: float

    def mean(self, arm: str) -> float:
        return float(self.accuracy[arm].mean())

    def compare(self, first: str, second: str) -> dict[str, float | int]:
        """Paired comparison of two arms on the same held-out samples: the accuracy difference
        in points, the samples right by only one of them, and the exact two-sided sign-test
        p-value of that split (McNemar's exact test)."""
        a, b = self.correct[first], self.correct[second]
        only_first, only_second = int((a & ~b).sum()), int((~a & b).sum())
        p = 1.0 if only_first + only_second == 0 else float(
            binomtest(only_first, only_first + only_second, 0.5).pvalue)
        return {"difference": 100.0 * float(a.mean() - b.mean()), f"right_by_{first}_only": only_first,
                f"right_by_{second}_only": only_second, "sign_test_p": p}


def _matched_random(rows: np.ndarray, kept_rows: np.ndarray, labels: np.ndarray,
                    rng: np.random.Generator) -> np.ndarray:
    """A random subset of ``rows`` with as many rows of each class as ``kept_rows`` has."""
    chosen = []
    for c in np.unique(labels[rows]):
        pool = rows[labels[rows] == c]
        n = int((labels[kept_rows] == c).sum())
        chosen.append(rng.choice(pool, size=n, replace=False))
    return np.sort(np.concatenate(chosen))


def same_steps(config: ProbeConfig, n_rows: int, n_full: int) -> ProbeConfig:
    """``config`` with its epochs scaled so ``n_rows`` rows get as many SGD steps as ``n_full``
    rows get in ``config.epochs`` (at most ``MAX_EPOCH_FACTOR`` times the epochs)."""
    steps_full = config.epochs * math.ceil(n_full / config.batch_size)
    per_epoch = math.ceil(n_rows / config.batch_size)
    epochs = min(math.ceil(steps_full / per_epoch), MAX_EPOCH_FACTOR * config.epochs)
    return dataclasses.replace(config, epochs=max(config.epochs, epochs))


def fit_predict(
    x: np.ndarray,
    y: np.ndarray,
    train_rows: np.ndarray,
    predict_rows: list[np.ndarray],
    *,
    n_classes: int,
    config: ProbeConfig,
    seed: int,
    teacher_logits: np.ndarray | None = None,
    alpha: float = 0.0,
    temperature: float = KD_TEMPERATURE,
    steps_of: int | None = None,
) -> list[np.ndarray]:
    """Train one probe on ``x[train_rows]`` and return its logits (float32) on each of
    ``predict_rows``.

    ``teacher_logits`` (N, C), indexed like ``x``: distil from them with weight ``alpha`` and
    ``temperature`` (:func:`backend.scoring.distillation.distillation_loss`). ``steps_of``: train
    for as many SGD steps as a probe on that many rows (:func:`same_steps`); default the
    training rows' own count. ``x`` float32 (N, D), ``y`` int64 (N,), already validated.
    """
    device = resolve_device(config.device)
    mean, scale = _standardizer(x[train_rows], config.standardize)

    def prepared(rows: np.ndarray) -> torch.Tensor:
        return torch.from_numpy((x[rows] - mean) / scale).to(device)

    soft = None
    if teacher_logits is not None and alpha > 0:
        soft = soften(torch.from_numpy(np.ascontiguousarray(teacher_logits[train_rows])).to(device), temperature)
    recipe = same_steps(config, train_rows.size, steps_of or train_rows.size)
    outputs = []
    with cpu_threads(config.cpu_threads, device):
        model = fit_probe(prepared(train_rows), torch.from_numpy(y[train_rows]).to(device), None,
                          n_classes=n_classes, config=recipe, seed=seed, teacher_probs=soft,
                          kd_weight=alpha, temperature=temperature)
        for rows in predict_rows:
            logits = np.empty((rows.size, n_classes), np.float32)
            forward_into(model, prepared(rows), logits, None)
            outputs.append(logits)
    return outputs


def plan_folds(labels: np.ndarray, kept: np.ndarray, *, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (train, test) folds :func:`evaluate_subset` uses, after checking the subset can be
    evaluated at all; ValueError saying what to change otherwise. Cheap (no training), so a job
    can call it before it records a run."""
    y = np.asarray(labels)
    kept = np.asarray(kept)
    if kept.dtype != bool or kept.shape != y.shape:
        raise ValueError(f"kept must be a (N,) bool mask matching {y.shape[0]} samples, got "
                         f"{kept.dtype} of shape {kept.shape}")
    n_kept = int(kept.sum())
    if n_kept == 0 or n_kept == y.size:
        raise ValueError(f"the subset keeps {n_kept} of the {y.size} samples of its pool; evaluation needs it "
                         "to keep some but not all of them")
    if np.unique(y).size < 2:
        raise ValueError("the pool has a single class; held-out accuracy needs at least 2")
    if not 2 <= n_folds <= y.size:
        raise ValueError(f"folds must be between 2 and the pool's {y.size} samples, got {n_folds}")
    folds = cv_folds(y, n_folds, seed)
    for fold, (train, _) in enumerate(folds):
        if not kept[train].any():
            raise ValueError(f"fold {fold + 1} of {len(folds)} has no kept sample to train on; "
                             "use fewer folds or a larger subset")
    return folds


def evaluate_subset(
    features: np.ndarray,
    labels: np.ndarray,
    kept: np.ndarray,
    *,
    n_classes: int,
    config: ProbeConfig,
    n_folds: int = 5,
    seed: int = 0,
    alpha: float | None = None,
    temperature: float = KD_TEMPERATURE,
    task_map: TaskMap | None = None,
) -> SubsetEvaluation:
    """Held-out accuracy of probes trained on the subset ``kept`` vs all rows vs a random subset.

    Parameters
    ----------
    features : (N, D) embeddings of the pool (the samples the subset was chosen from).
    labels : (N,) int classes in 0..n_classes-1.
    kept : (N,) bool, True where the subset keeps the sample; at least one in every fold's
        training part, and not every sample (nothing to compare otherwise).
    config : the probe recipe (kind, epochs, ...); its ``n_folds`` / ``seeds`` are not used.
    alpha : KD weight; None -> :func:`backend.scoring.distillation.kd_weight` of the kept share.
    temperature : softmax temperature of the KD term.
    task_map : runs the folds (:data:`backend.scoring.probes.TaskMap`; default: one after the
        other in this process).

    See the module docstring for the algorithm. Deterministic for a given ``seed`` on CPU.
    Refuses (ValueError) what :func:`plan_folds` refuses.
    """
    x, y = _validate(features, labels, n_classes)
    folds = plan_folds(y, kept, n_folds=n_folds, seed=seed)
    kept = np.asarray(kept, dtype=bool)
    fraction = float(kept.mean())
    weight = kd_weight(fraction) if alpha is None else float(alpha)
    accuracy = {arm: np.empty(len(folds)) for arm in ARMS}
    correct = {arm: np.zeros(y.size, bool) for arm in ARMS}
    tasks = [(fold, train, test) for fold, (train, test) in enumerate(folds)]
    for index, outputs in (task_map or serial_tasks)(fold_outputs, tasks,
                                                     shared=(x, y, kept, n_classes, config, seed, weight, temperature)):
        test = tasks[index][2]
        for arm, logits in outputs.items():
            right = logits.argmax(axis=1) == y[test]
            correct[arm][test] = right
            accuracy[arm][index] = float(right.mean())
    counts = np.bincount(y, minlength=n_classes).astype(float)
    recall = {}
    for arm in ARMS:
        hits = np.bincount(y[correct[arm]], minlength=n_classes).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            recall[arm] = np.where(counts > 0, hits / counts, np.nan)
    return SubsetEvaluation(accuracy, recall, correct, fraction, weight, temperature)


def fold_outputs(x: np.ndarray, y: np.ndarray, kept: np.ndarray, n_classes: int, config: ProbeConfig, seed: int,
                 weight: float, temperature: float, fold: int, train: np.ndarray, test: np.ndarray
                 ) -> dict[str, np.ndarray]:
    """One fold of :func:`evaluate_subset` (a task of its ``task_map``): the held-out logits of
    every arm, the full-data probe first (it is the distillation teacher on ``train``)."""
    kept_train = train[kept[train]]
    random_train = _matched_random(train, kept_train, y, np.random.default_rng(sub_seed(seed, fold, 1)))
    common = {"n_classes": n_classes, "config": config, "seed": sub_seed(seed, fold),
              "temperature": temperature, "steps_of": train.size}
    full, on_train = fit_predict(x, y, train, [test, train], **common)
    teacher = np.zeros((y.size, n_classes), np.float32)
    teacher[train] = on_train
    outputs = {"full": full}
    for arm, rows in (("subset", kept_train), ("random", random_train)):
        outputs[arm] = fit_predict(x, y, rows, [test], **common)[0]
        outputs[f"{arm}_kd"] = fit_predict(x, y, rows, [test], teacher_logits=teacher, alpha=weight,
                                           **common)[0]
    return outputs
