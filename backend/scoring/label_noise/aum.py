"""Area Under the Margin (Pleiss, Zhang, Elenberg & Weinberger 2020, NeurIPS, "Identifying
Mislabeled Data using the Area Under the Margin Ranking").

While a network trains, a correctly labelled sample's logit for its assigned class soon exceeds
every other logit; a mislabelled one is pulled towards its assigned class only by memorisation,
so the other (true) class keeps winning for many epochs. AUM averages that margin over epochs.

To know how low is "low", the paper adds **threshold samples**: N / (C + 1) samples relabelled to
a fake extra class C, which are mislabelled by construction; a sample is flagged when its AUM is
below the 99th percentile of the threshold samples' AUM. Two runs with disjoint threshold sets
give every sample an AUM from a run in which it kept its own label.

The pure parts (margins, threshold sets, the threshold rule) are here; training is injected as
``train_fn`` (the verdict pipeline passes a probe, see
:func:`backend.scoring.probes.train_dynamics`), so this module imports no model code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from backend.scoring.class_columns import best_other, true_class

TrainFn = Callable[[np.ndarray, int, int], np.ndarray]
"""train_fn(labels (N,) with values in [0, C], n_classes = C + 1, run index) -> logits (E, N, C + 1)."""


@dataclass(frozen=True)
class AumResult:
    """Output of :func:`aum_with_threshold_samples` (N samples, R runs).

    ``aum`` (N,): mean AUM over the runs where the sample kept its label; lower = more likely
    wrong. ``margin_to_threshold`` (N,): mean over those runs of (AUM - that run's threshold);
    negative = below the threshold. ``is_label_issue`` (N,) bool: ``margin_to_threshold < 0``.
    ``thresholds`` (R,): the per-run threshold (percentile of the threshold samples' AUM).
    ``threshold_sets``: the R disjoint index arrays of threshold samples.
    """

    aum: np.ndarray
    margin_to_threshold: np.ndarray
    is_label_issue: np.ndarray
    thresholds: np.ndarray
    threshold_sets: tuple[np.ndarray, ...]


def margins_from_logits(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-epoch margins (E, N): assigned logit minus the largest other logit (paper eq. 1).

    ``logits`` (E, N, C) or (N, C); ``labels`` (N,) ints in [0, C). Negative = another class wins.
    """
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim == 2:
        z = z[None]
    y = np.asarray(labels).astype(np.int64)
    if z.ndim != 3 or y.shape != (z.shape[1],):
        raise ValueError(f"need logits (E, N, C) and labels (N,), got {z.shape} and {y.shape}")
    return true_class(z, y) - best_other(z, y)[0]


def aum_from_logits(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """AUM (N,): mean over epochs of (assigned logit - largest other logit), in logit units.

    Lower = more likely mislabelled; typical clean samples are clearly positive.
    """
    return margins_from_logits(logits, labels).mean(axis=0)


def threshold_sample_sets(
    n_samples: int, *, n_classes: int, n_runs: int = 2, seed: int = 0
) -> tuple[np.ndarray, ...]:
    """``n_runs`` disjoint random sets of ``n_samples // (C + 1)`` indices each (sorted int64).

    When ``n_runs * n_samples // (C + 1)`` exceeds N the sets shrink to ``N // n_runs``.
    """
    size = min(n_samples // (n_classes + 1), n_samples // n_runs)
    perm = np.random.default_rng(seed).permutation(n_samples)
    return tuple(np.sort(perm[r * size : (r + 1) * size]) for r in range(n_runs))


def aum_threshold(threshold_aum: np.ndarray, *, percentile: float = 99.0) -> float:
    """The AUM below which samples are flagged: ``percentile`` of the threshold samples' AUM."""
    values = np.asarray(threshold_aum, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no threshold samples: need N >= C + 1 samples")
    return float(np.percentile(values, percentile))


def threshold_run_labels(given_labels: np.ndarray, sets: tuple[np.ndarray, ...], *, n_classes: int
                         ) -> list[np.ndarray]:
    """Each run's training labels: ``given_labels`` with that run's threshold set relabelled to
    the fake class ``n_classes`` (int64 copies)."""
    given = np.asarray(given_labels).astype(np.int64)
    runs = []
    for fake in sets:
        labels = given.copy()
        labels[fake] = n_classes
        runs.append(labels)
    return runs


def combine_threshold_runs(run_aums: list[np.ndarray], sets: tuple[np.ndarray, ...], *,
                           percentile: float = 99.0) -> AumResult:
    """Steps 2-3 of :func:`aum_with_threshold_samples` from each run's AUM (N,) under its own
    labels: per-run thresholds, then each sample averaged over the runs where it kept its label
    (summed in run order, so the result does not depend on the order the runs finished in)."""
    n = np.asarray(run_aums[0]).size
    aum_sum = np.zeros(n)
    margin_sum = np.zeros(n)
    runs_used = np.zeros(n)
    thresholds = np.empty(len(sets))
    for r, (aum, fake) in enumerate(zip(run_aums, sets, strict=True)):
        aum = np.asarray(aum, dtype=np.float64)
        thresholds[r] = aum_threshold(aum[fake], percentile=percentile)
        real = np.ones(n, bool)
        real[fake] = False
        aum_sum[real] += aum[real]
        margin_sum[real] += aum[real] - thresholds[r]
        runs_used[real] += 1
    if (runs_used == 0).any():
        raise ValueError("some samples were threshold samples in every run; use n_runs >= 2")
    margin = margin_sum / runs_used
    return AumResult(
        aum=aum_sum / runs_used,
        margin_to_threshold=margin,
        is_label_issue=margin < 0,
        thresholds=thresholds,
        threshold_sets=sets,
    )


def aum_with_threshold_samples(
    given_labels: np.ndarray,
    *,
    n_classes: int,
    train_fn: TrainFn,
    n_runs: int = 2,
    percentile: float = 99.0,
    seed: int = 0,
) -> AumResult:
    """AUM with threshold samples, flagged against the paper's 99th-percentile rule.

    Algorithm
    ---------
    1. Draw ``n_runs`` disjoint threshold sets of N / (C + 1) samples.
    2. Run r: relabel set r to the fake class C, train with C + 1 outputs (``train_fn``), take
       every sample's AUM under its run-r label; threshold t_r = percentile of set r's AUM.
    3. Each sample's AUM and (AUM - t_r) are averaged over the runs where it was not a
       threshold sample; flag where the averaged margin to the threshold is negative.

    The runs are independent: a caller with workers trains them in parallel with
    :func:`threshold_run_labels`, :func:`aum_from_logits` and :func:`combine_threshold_runs`
    (what the label-noise pipeline does), with the same result.
    """
    given = np.asarray(given_labels).astype(np.int64)
    sets = threshold_sample_sets(given.size, n_classes=n_classes, n_runs=n_runs, seed=seed)
    run_aums = []
    for r, labels in enumerate(threshold_run_labels(given, sets, n_classes=n_classes)):
        logits = np.asarray(train_fn(labels, n_classes + 1, r))
        if logits.ndim != 3 or logits.shape[1:] != (given.size, n_classes + 1):
            raise ValueError(f"train_fn must return (E, {given.size}, {n_classes + 1}), got {logits.shape}")
        run_aums.append(aum_from_logits(logits, labels))
        del logits
    return combine_threshold_runs(run_aums, sets, percentile=percentile)
