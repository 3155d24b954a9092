"""Assembling what the scorers read besides the dataset (``backend.jobs.dataset``): the probes'
outputs, or the user's imported per-epoch logits."""

from __future__ import annotations

import dataclasses
import functools
import logging
from dataclasses import dataclass

import numpy as np

from backend.jobs.dataset import Dataset
from backend.jobs.runner import PROBES_PER_GPU, LocalRunner, Runner
from backend.scoring.probes import (
    ProbeConfig,
    TaskMap,
    TrainingDynamics,
    fold_tasks,
    held_out_probs,
    out_of_fold_probs_by_seed,
    train_dynamics,
)
from backend.storage import model_outputs
from backend.storage.errors import StorageError
from backend.storage.workspace import Workspace

log = logging.getLogger(__name__)

#: Above this many samples the probes switch to a cheaper recipe (linear, fewer epochs, seeds and
#: folds): the default MLP recipe costs ~1 s per 1,000 samples per seed on 2 CPU cores.
LARGE_N = 50_000


def probe_config_for(n: int, *, device: str | None = None) -> ProbeConfig:
    """The probe recipe for ``n`` samples (documented in README "Scoring")."""
    if n <= LARGE_N:
        return ProbeConfig(device=device)
    return ProbeConfig(kind="linear", epochs=8, seeds=(0,), n_folds=3, batch_size=1024, device=device)


@dataclass
class ProbeOutputs:
    probs_by_seed: np.ndarray  # (S, N, C) out-of-fold probabilities per seed
    logits: np.ndarray | None  # (S, E, N, C) training dynamics (probes) or (1, E, N, C) (imported);
    # None once the score job has computed the dynamics scores (it releases them)
    features: np.ndarray | None  # (S, E, N, H) penultimate features, probes only
    weights: np.ndarray | None  # (E, C, H) last layer of the first seed
    biases: np.ndarray | None  # (E, C)
    source: str  # "probe" | "imported:<name>"

    @property
    def oof_probs(self) -> np.ndarray:
        return self.probs_by_seed.mean(axis=0)


def run_probes(data: Dataset, config: ProbeConfig, *, logits_name: str | None = None,
               ws: Workspace | None = None, runner: Runner | None = None) -> ProbeOutputs:
    """Out-of-fold probabilities and training dynamics for every sample.

    Algorithm
    ---------
    1. K-fold cross-fitting per seed: every sample's probabilities come from a probe that never
       saw it (what confident learning needs).
    2. Full-data training per seed, recording every sample's logits (and penultimate features)
       after every epoch: the training dynamics EL2N, GraNd, forgetting, AUM, dynamic
       uncertainty and cartography read.
    3. With ``logits_name``, the user's own imported per-epoch logits replace step 2.

    ``runner``: where the folds and the per-seed trainings run (``backend.jobs.runner``; default
    this process). The numbers are the same either way.
    """
    runner = runner or LocalRunner()
    x = data.features
    if logits_name:
        outside = _imported_logits(ws, logits_name, data)  # checked before any probe trains
        probs = out_of_fold_probs_by_seed(x, data.labels, n_classes=data.n_classes, config=config,
                                          task_map=probe_task_map(runner, config))
        return ProbeOutputs(probs, outside, None, None, None, f"imported:{logits_name}")
    # The last seed's probe standardises ``x`` (this function's own copy) in place: one N x D
    # copy less at the job's probe peak (2 GB at 1M x 512); same values. Each run records its
    # logits straight into its slice of one (S, E, N, C) array: stacking them afterwards held
    # two copies at once (3.2 GB more at 1M rows x 100 classes x 8 epochs).
    logits = np.empty((len(config.seeds), config.epochs, len(x), data.n_classes), np.float32)
    record = len(x) <= LARGE_N
    if runner.kind == "local":
        probs = out_of_fold_probs_by_seed(x, data.labels, n_classes=data.n_classes, config=config)
        runs: list[TrainingDynamics] = [
            train_dynamics(x, data.labels, n_classes=data.n_classes, config=config, seed=seed,
                           record_features=record, logits_out=logits[k],
                           standardize_in_place=k == len(config.seeds) - 1)
            for k, seed in enumerate(config.seeds)
        ]
    else:
        probs, runs = _probes_on_workers(runner, x, data, config, record, logits)
    features = np.stack([r.features for r in runs]) if runs[0].features is not None else None
    return ProbeOutputs(probs, logits, features, runs[0].weights, runs[0].biases, "probe")


def probe_task_map(runner: Runner, config: ProbeConfig) -> TaskMap:
    """The runner's ``map_unordered`` as the probes' :data:`TaskMap`: on a cluster with GPUs, a
    probe that may use one (``config.device`` not ``"cpu"``) asks for a share of a GPU."""
    share = 0.0 if config.device == "cpu" else 1.0 / PROBES_PER_GPU
    return functools.partial(runner.map_unordered, gpu_share=share)


def _imported_logits(ws: Workspace | None, name: str, data: Dataset) -> np.ndarray:
    """The user's per-epoch logits of ``name`` as (1, E, N, C) in the dataset's row order."""
    assert ws is not None
    ids, _, logits = model_outputs.read_logits(ws, name)
    pos = {i: k for k, i in enumerate(ids)}
    missing = [i for i in data.ids if i not in pos]
    if missing:
        raise StorageError(f"imported logits {name!r} lack {len(missing)} embedded samples "
                           f"(e.g. {missing[0]}); import logits for every sample")
    if logits.shape[2] != data.n_classes:
        raise StorageError(f"imported logits have {logits.shape[2]} classes, the workspace {data.n_classes}; "
                           f"the columns must follow the class order {data.classes}")
    order = np.array([pos[i] for i in data.ids])
    return logits[:, order][None]


def _probes_on_workers(runner: Runner, x: np.ndarray, data: Dataset, config: ProbeConfig, record: bool,
                       logits: np.ndarray) -> tuple[np.ndarray, list[TrainingDynamics]]:
    """The per-seed full-data trainings and every cross-fitting fold as one batch of runner
    tasks, the longest (full-data) first, so workers never wait for one group to finish before
    the other starts. Each seed's logits land in ``logits[k]``; same values as the local path."""
    folds, slots = fold_tasks(data.labels, config)
    tasks = [("dynamics", seed, record) for seed in config.seeds] + [("fold", *task) for task in folds]
    n_seeds = len(config.seeds)
    probs = np.empty((n_seeds, len(x), data.n_classes), np.float32)
    runs: list[TrainingDynamics | None] = [None] * n_seeds
    for index, out in probe_task_map(runner, config)(probe_task, tasks,
                                                     shared=(x, data.labels, data.n_classes, config)):
        if index >= n_seeds:
            probs[slots[index - n_seeds], folds[index - n_seeds][3]] = out
            continue
        logits[index] = out.logits
        # Ray hands back read-only views of one shared-memory object holding the worker's whole
        # result: keeping any of them (weights, features) would pin its (E, N, C) logits for the
        # rest of the job, so every array is copied out and the object is released.
        out = dataclasses.replace(out, **{field.name: np.array(value) for field in dataclasses.fields(out)
                                          if isinstance(value := getattr(out, field.name), np.ndarray)
                                          and field.name != "logits"})
        out.logits = logits[index]
        if record and config.kind == "linear":  # the standardised inputs, as train_dynamics gives them
            x_std = x - out.input_mean
            x_std /= out.input_scale
            out.features = np.broadcast_to(x_std, (config.epochs, *x.shape))
        runs[index] = out
    return probs, runs  # type: ignore[return-value]


def probe_task(x: np.ndarray, labels: np.ndarray, n_classes: int, config: ProbeConfig, kind: str, *args):
    """One runner task of :func:`_probes_on_workers`: ``("dynamics", seed, record_features)`` or
    ``("fold", seed, fold, train_idx, test_idx)``."""
    if kind == "fold":
        return held_out_probs(x, labels, n_classes, config, *args)
    return dynamics_task(x, labels, n_classes, config, *args)


def dynamics_task(x: np.ndarray, labels: np.ndarray, n_classes: int, config: ProbeConfig, seed: int,
                  record_features: bool) -> TrainingDynamics:
    """One seed's full-data probe (a runner task). A linear probe's recorded features are a
    broadcast view of its standardised inputs, which pickling would copy once per epoch: they are
    dropped here and rebuilt by the caller."""
    run = train_dynamics(x, labels, n_classes=n_classes, config=config, seed=seed,
                         record_features=record_features)
    if config.kind == "linear":
        run.features = None
    return run
