"""Assembling what the scorers read besides the dataset (``backend.jobs.dataset``): the probes'
outputs, or the user's imported per-epoch logits."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from backend.jobs.dataset import Dataset
from backend.scoring.probes import (
    ProbeConfig,
    TrainingDynamics,
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
               ws: Workspace | None = None) -> ProbeOutputs:
    """Out-of-fold probabilities and training dynamics for every sample.

    Algorithm
    ---------
    1. K-fold cross-fitting per seed: every sample's probabilities come from a probe that never
       saw it (what confident learning needs).
    2. Full-data training per seed, recording every sample's logits (and penultimate features)
       after every epoch: the training dynamics EL2N, GraNd, forgetting, AUM, dynamic
       uncertainty and cartography read.
    3. With ``logits_name``, the user's own imported per-epoch logits replace step 2.
    """
    x = data.features
    probs = out_of_fold_probs_by_seed(x, data.labels, n_classes=data.n_classes, config=config)
    if logits_name:
        assert ws is not None
        ids, _, logits = model_outputs.read_logits(ws, logits_name)
        pos = {i: k for k, i in enumerate(ids)}
        missing = [i for i in data.ids if i not in pos]
        if missing:
            raise StorageError(f"imported logits {logits_name!r} lack {len(missing)} embedded samples "
                               f"(e.g. {missing[0]}); import logits for every sample")
        if logits.shape[2] != data.n_classes:
            raise StorageError(f"imported logits have {logits.shape[2]} classes, the workspace {data.n_classes}; "
                               f"the columns must follow the class order {data.classes}")
        order = np.array([pos[i] for i in data.ids])
        return ProbeOutputs(probs, logits[:, order][None], None, None, None, f"imported:{logits_name}")
    # The last seed's probe standardises ``x`` (this function's own copy) in place: one N x D
    # copy less at the job's probe peak (2 GB at 1M x 512); same values. Each run records its
    # logits straight into its slice of one (S, E, N, C) array: stacking them afterwards held
    # two copies at once (3.2 GB more at 1M rows x 100 classes x 8 epochs).
    logits = np.empty((len(config.seeds), config.epochs, len(x), data.n_classes), np.float32)
    runs: list[TrainingDynamics] = [
        train_dynamics(x, data.labels, n_classes=data.n_classes, config=config, seed=seed,
                       record_features=len(x) <= LARGE_N, logits_out=logits[k],
                       standardize_in_place=k == len(config.seeds) - 1)
        for k, seed in enumerate(config.seeds)
    ]
    features = np.stack([r.features for r in runs]) if runs[0].features is not None else None
    return ProbeOutputs(probs, logits, features, runs[0].weights, runs[0].biases, "probe")
