"""The label-noise part of the score job: the combined verdict on the stored embeddings.

Wires :func:`backend.scoring.label_noise.pipeline.label_issue_verdict` to the score job's inputs:
the probes' out-of-fold probabilities (or the user's imported model's) are reused, so the verdict
only trains what it adds (the cleaning rounds, AUM).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from backend.jobs.dataset import Dataset
from backend.jobs.score_inputs import LARGE_N, ProbeOutputs
from backend.scoring.label_noise.pipeline import VerdictConfig, label_issue_verdict
from backend.scoring.label_noise.verdict import detector_texts
from backend.scoring.probes import ProbeConfig, TaskMap


def verdict_config_for(n: int, probe: ProbeConfig) -> VerdictConfig:
    """The benchmark's defaults up to ``LARGE_N`` rows; above it AUM is left out (two extra
    full-data trainings storing (epochs, N, C + 1) logits), the cleaning rounds are kept."""
    return VerdictConfig(probe=probe, aum=n <= LARGE_N)


def label_noise_stage(
    data: Dataset, probes: ProbeOutputs, probe_config: ProbeConfig, *,
    neighbors: tuple[np.ndarray, np.ndarray] | None = None, task_map: TaskMap | None = None,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Run the verdict; return (per-sample verdict frame, per-detector score arrays).

    The frame has ``id``, ``label_issue_score`` (in [0, 1], higher = more likely mislabeled),
    ``is_label_issue``, ``suggested_label`` (a class name; the given label where not flagged) and
    ``detectors`` (comma-separated names of the detectors that flagged the sample). The score
    arrays are named ``<detector>_score`` and are stored beside the pruning scores, with
    ``suggested_probability`` (the verdict's posterior probability of the suggested label).
    ``neighbors``: optional precomputed (indices, similarities) of the unit embeddings, k = 10,
    self excluded (the score job shares one search with the kNN pruning scores at large N).
    ``task_map``: runs the AUM threshold runs and the cleaning rounds' probe folds (default: in
    this process).
    """
    config = verdict_config_for(len(data.ids), probe_config)
    verdict = label_issue_verdict(
        data.features, data.labels, n_classes=data.n_classes, config=config, pred_probs=probes.oof_probs,
        neighbors=neighbors, task_map=task_map,
    )
    classes = np.asarray(data.classes, dtype=object)
    frame = pd.DataFrame(
        {
            "id": data.ids.astype(str),
            "label_issue_score": verdict.label_issue_score.astype(np.float64),
            "is_label_issue": verdict.is_label_issue.astype(bool),
            "suggested_label": classes[verdict.suggested_label],
            "detectors": detector_texts(verdict.agreed),
        }
    )
    scores = {f"{name}_score": values for name, values in verdict.detector_scores.items()}
    # What the review queue shows beside the suggestion: the verdict's own posterior of it.
    rows = np.arange(len(data.ids))
    scores["suggested_probability"] = verdict.posterior[rows, verdict.suggested_label].astype(np.float64)
    return frame, scores
