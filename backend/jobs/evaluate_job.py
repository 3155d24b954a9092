"""The evaluate job: what training on a saved subset costs (``thresher evaluate``), as a run.

Held-out accuracy of the engine's probe trained on the subset, on all samples, on a random
subset of the same size per class, and on both subsets with knowledge distillation from the
full-data probe (Ben-Baruch et al. 2024); see :mod:`backend.scoring.subset_evaluation`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from backend.jobs.dataset import Dataset, load_dataset, split_rows
from backend.jobs.project_job import default_embedding_key
from backend.jobs.runner import LocalRunner, Runner
from backend.jobs.tracking import recorded_run
from backend.storage import runs, subsets
from backend.storage.errors import NotFoundError, StorageError
from backend.storage.workspace import Workspace

#: The arms of :mod:`backend.scoring.subset_evaluation` (``ARMS``, same order) as a person reads
#: them (CLI report, app). Spelled here so the app can show runs without importing torch.
ARM_TEXT = {
    "full": "all samples",
    "subset": "this subset",
    "subset_kd": "this subset + KD",
    "random": "random subset, same size",
    "random_kd": "random subset + KD",
}
ARMS = tuple(ARM_TEXT)
#: The paired comparisons an evaluate summary stores, as the CLI report and the app title them.
COMPARISONS = {
    "subset_vs_random": "This subset vs a random one of the same size",
    "subset_kd_vs_subset": "Distillation on this subset",
    "subset_kd_vs_random_kd": "With distillation, this subset vs random",
}


@dataclass
class EvaluateResult:
    run_id: str
    summary: dict[str, Any]


@dataclass(frozen=True)
class SubsetPool:
    """Where a subset was chosen from: ``split`` (None = every sample), the ``score_run`` its
    prune read, ``source`` (how that was found, as the report says it) and ``saved_at`` (when
    the subset was last saved: an evaluation of it is stale once this changes)."""

    split: str | None
    score_run: str | None
    source: str
    saved_at: str


def subset_pool(ws: Workspace, record: subsets.SubsetRecord) -> SubsetPool:
    """The pool of a saved subset: the split its prune run ran on; every sample for a hand-made
    subset, or for one whose prune run was deleted (``source`` says so)."""
    if record.origin != "prune" or not record.run_id:
        return SubsetPool(None, None, f"every sample (a subset saved from {record.origin})", record.saved_at)
    try:
        config = runs.get_run(ws, record.run_id)["config"]
    except NotFoundError:
        return SubsetPool(None, None, f"every sample: prune run {record.run_id}, which made it, was deleted, "
                          "so the split it was pruned from is unknown", record.saved_at)
    split = config.get("split") or None
    where = f"split {split!r}" if split else "every sample"
    return SubsetPool(split, config.get("score_run"), f"{where}, as pruned by {record.run_id}", record.saved_at)


def _embedding_key(ws: Workspace, score_run: str | None) -> str:
    if score_run:
        try:
            key = runs.get_run(ws, score_run)["embedding_key"]
        except NotFoundError:
            key = None
        if key in ws.embedding_keys():
            return key
    return default_embedding_key(ws)


@dataclass
class LoadedPool:
    """A subset's pool, loaded: ``kept`` (P,) bool over the pool's rows, ``labels`` (P,) classes
    re-coded to the classes present in the pool (``classes``, their names)."""

    origin: SubsetPool
    embedding_key: str
    data: Dataset
    rows: np.ndarray  # (P,) indices into ``data``
    kept: np.ndarray
    labels: np.ndarray
    classes: list[str]

    def features(self) -> np.ndarray:
        """(P, D) unnormalised embeddings of the pool's rows (not all N x D first)."""
        return self.data.unit[self.rows] * self.data.norms[self.rows, None]


def load_subset_pool(ws: Workspace, subset: str, embedding_key: str | None = None) -> LoadedPool:
    """Subset ``subset`` within its pool (:func:`subset_pool`), with the pool's embeddings; every
    kept sample must be embedded under ``embedding_key`` (default: its score run's)."""
    record = subsets.subset_record(ws, subset)  # NotFoundError naming the saved subsets
    kept_ids = set(record.ids)
    origin = subset_pool(ws, record)
    key = embedding_key or _embedding_key(ws, origin.score_run)
    data = load_dataset(ws, key)
    rows = np.arange(len(data.ids))
    if origin.split:
        rows = split_rows(ws, data.ids, origin.split)
    # a hash lookup per row: np.isin on object (string) arrays compares every pair, O(N x kept),
    # which took over 40 minutes at 1M rows
    kept = pd.Index(data.ids[rows]).isin(kept_ids)
    outside = len(kept_ids) - int(kept.sum())
    if outside:
        where = f"split {origin.split!r} of embedding {key!r}" if origin.split else f"embedding {key!r}"
        raise StorageError(f"{outside} of the {len(kept_ids)} samples of subset {subset!r} are not in {where}; "
                           "embed them, or pass the --embedding their prune used")
    present = np.unique(data.labels[rows])
    labels = np.searchsorted(present, data.labels[rows])  # classes absent from the pool drop out
    return LoadedPool(origin, key, data, rows, kept, labels, [data.classes[c] for c in present])


def teacher_soft_labels(ws: Workspace, subset: str, *, embedding_key: str | None = None, seed: int = 0,
                        device: str | None = None) -> pd.DataFrame:
    """Soft labels for training your own model on ``subset`` with distillation (Ben-Baruch et
    al. 2024): one row per kept sample with ``teacher_logit_<class>`` (the engine's probe trained
    on every sample of the subset's pool, as the teacher of ``thresher evaluate``),
    ``kd_weight`` (the weight the subset's kept fraction calls for, the fraction removed) and
    ``kd_temperature``; soften with ``softmax(logits / kd_temperature)``. A probe on embeddings
    is a small teacher; Ben-Baruch et al. found teachers smaller than the student can help when
    much of the data is pruned.
    """
    from backend.jobs.score_inputs import probe_config_for  # torch: only when a job runs
    from backend.scoring.distillation import KD_TEMPERATURE, kd_weight
    from backend.scoring.subset_evaluation import fit_predict

    pool = load_subset_pool(ws, subset, embedding_key)
    if len(pool.classes) < 2:
        raise ValueError(f"the pool of subset {subset!r} has a single class; a teacher needs at least 2")
    config = probe_config_for(pool.kept.size, device=device)
    kept_rows = np.flatnonzero(pool.kept)
    logits = fit_predict(pool.features(), pool.labels, np.arange(pool.kept.size), [kept_rows],
                         n_classes=len(pool.classes), config=config, seed=seed)[0]
    frame = pd.DataFrame(logits, columns=[f"teacher_logit_{c}" for c in pool.classes])
    frame.insert(0, "id", pool.data.ids[pool.rows][kept_rows])
    frame["kd_weight"] = round(kd_weight(pool.kept.mean()), 4)
    frame["kd_temperature"] = KD_TEMPERATURE
    return frame


def evaluate(ws: Workspace, *, subset: str, embedding_key: str | None = None, folds: int = 5, seed: int = 0,
             kd_weight: float | None = None, temperature: float | None = None,
             device: str | None = None, runner: Runner | None = None) -> EvaluateResult:
    """Evaluate subset ``subset`` against its pool and store the outcome as an ``evaluate`` run.

    The pool is the samples the subset was chosen from: the split its prune ran on, else every
    embedded sample (:func:`subset_pool`). Input that cannot be evaluated is refused before a
    run is recorded. ``embedding_key`` defaults to the one its score run used, else the
    workspace default. ``kd_weight`` None ties the KD weight to the kept fraction
    (:func:`backend.scoring.distillation.kd_weight`); ``temperature`` None is the shipped
    ``KD_TEMPERATURE``. ``runner``: where the folds train (``backend.jobs.runner``; default this
    process; same numbers either way).
    """
    from backend.jobs.score_inputs import (  # torch: only when a job runs
        probe_config_for,
        probe_task_map,
    )
    from backend.scoring.distillation import KD_TEMPERATURE
    from backend.scoring.subset_evaluation import evaluate_subset, plan_folds

    temperature = KD_TEMPERATURE if temperature is None else temperature
    if folds < 2:
        raise ValueError(f"--folds must be at least 2, got {folds}")
    if kd_weight is not None and not 0.0 <= kd_weight <= 1.0:
        raise ValueError(f"--kd-weight must be in [0, 1], got {kd_weight}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"--temperature must be a number > 0, got {temperature}")
    pool = load_subset_pool(ws, subset, embedding_key)
    origin, kept, classes = pool.origin, pool.kept, pool.classes
    try:
        n_folds = len(plan_folds(pool.labels, kept, n_folds=folds, seed=seed))  # refuse before a run is recorded
    except ValueError as exc:
        raise ValueError(f"subset {subset!r} cannot be evaluated against {origin.source}: {exc}") from None
    config = probe_config_for(kept.size, device=device)
    run_config = {"subset": subset, "subset_saved_at": origin.saved_at, "embedding_key": pool.embedding_key,
                  "split": origin.split, "folds": n_folds, "kd_weight": kd_weight, "temperature": temperature,
                  "probe": config.kind, "epochs": config.epochs}
    runner = runner or LocalRunner()
    with recorded_run(ws, "evaluate", run_config, embedding_key=pool.embedding_key, seed=seed) as run:
        result = evaluate_subset(pool.features(), pool.labels, kept, n_classes=len(classes), config=config,
                                 n_folds=n_folds, seed=seed, alpha=kd_weight, temperature=temperature,
                                 task_map=probe_task_map(runner, config))
        run.summary = {
            "subset": subset, "subset_saved_at": origin.saved_at, "split": origin.split, "pool": origin.source,
            "runner": runner.describe(),
            "n_pool": int(kept.size), "n_kept": int(kept.sum()),
            "kept_fraction": round(result.kept_fraction, 4), "folds": n_folds, "probe": config.kind,
            "kd_weight": round(result.kd_weight, 4), "temperature": temperature,
            "accuracy": {arm: round(100 * result.mean(arm), 2) for arm in ARMS},
            "accuracy_std": {arm: round(100 * float(result.accuracy[arm].std()), 2) for arm in ARMS},
            "recall_by_class": {arm: {c: _rounded(r) for c, r in zip(classes, result.recall[arm], strict=True)}
                                for arm in ARMS},
            **{key: _rounded_dict(result.compare(*key.split("_vs_"))) for key in COMPARISONS},
        }
    return EvaluateResult(run.run_id, run.summary)


def _rounded(value: float) -> float | None:
    return None if np.isnan(value) else round(100 * float(value), 2)


def _rounded_dict(stats: dict) -> dict:
    """Difference in points to 2 decimals, the p-value to 3 significant digits, counts as they are."""
    out = dict(stats)
    out["difference"] = round(stats["difference"], 2)
    out["sign_test_p"] = float(f"{stats['sign_test_p']:.3g}")
    return out


def class_losses(summary: dict, *, arm: str = "subset", top: int = 5) -> list[tuple[str, float]]:
    """The classes whose held-out recall drops most from all samples to ``arm`` (points, most
    negative first); classes with no change are left out."""
    full, other = summary["recall_by_class"]["full"], summary["recall_by_class"][arm]
    drops = [(c, other[c] - full[c]) for c in full if full[c] is not None and other[c] is not None]
    return sorted([d for d in drops if d[1] < 0], key=lambda d: d[1])[:top]


def comparison_text(stats: dict) -> str:
    """One paired comparison of an evaluate summary (``subset_vs_random`` ...) as a person reads it."""
    first, second = (k for k in stats if k.startswith("right_by_"))
    return (f"{stats['difference']:+.2f} points (held-out samples right by one only: {stats[first]} / "
            f"{stats[second]}, sign test p = {stats['sign_test_p']:.2g})")


def report(summary: dict) -> list[str]:
    """The text ``thresher evaluate`` prints for an evaluate run's summary."""
    lines = [f"subset {summary['subset']!r} keeps {summary['n_kept']:,} of the {summary['n_pool']:,} samples of "
             f"its pool ({100 * summary['kept_fraction']:.1f} %): {summary['pool']}",
             f"held-out accuracy of a {summary['probe']} probe, {summary['folds']}-fold:"]
    for arm in ARMS:
        lines.append(f"  {ARM_TEXT[arm]:26s} {summary['accuracy'][arm]:6.2f} ± {summary['accuracy_std'][arm]:.2f}")
    lines.append(f"  (KD: weight {summary['kd_weight']:.2f}, temperature {summary['temperature']:g}; "
                 "Ben-Baruch et al. 2024)")
    for key, text in COMPARISONS.items():
        lines.append(f"  {text}: {comparison_text(summary[key])}")
    losses = class_losses(summary)
    if losses:
        lines.append("  classes losing most recall on this subset: "
                     + ", ".join(f"{c} ({d:+.1f})" for c, d in losses))
    return lines
