"""The neural-collapse part of the score job: the run's collapse metrics and each sample's
distances to the class means.

Wires :mod:`backend.scoring.neural_collapse` (Papyan et al. 2020; Dang et al. 2023) to the score
job's inputs: the embeddings, the probe's penultimate features and last layer at every epoch,
and an imported classifier over the embeddings when one is named. Returns what the score job
stores; nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend.jobs.dataset import Dataset
from backend.jobs.score_inputs import ProbeOutputs
from backend.scoring import neural_collapse as nc
from backend.storage import score_export


@dataclass
class CollapseOutputs:
    """``rows``: the collapse table's rows (:func:`collapse_rows`); ``sample_source`` and
    ``sample_scores``: :func:`sample_collapse_scores`."""

    rows: list[dict]
    sample_source: str
    sample_scores: dict[str, np.ndarray]


def collapse_stage(data: Dataset, probes: ProbeOutputs, *, classifier: dict | None) -> CollapseOutputs:
    """Collapse metrics and per-sample distances; the unnormalised embeddings are computed once
    for both."""
    feats = data.features
    rows = collapse_rows(data, probes, classifier=classifier, features=feats)
    source, scores = sample_collapse_scores(data, probes, classifier=classifier, features=feats)
    return CollapseOutputs(rows, source, scores)


def sample_collapse_scores(data: Dataset, probes: ProbeOutputs, *, classifier: dict | None,
                           features: np.ndarray | None = None) -> tuple[str, dict[str, np.ndarray]]:
    """(source, {name: (N,) values}) for ``score_export.NC_SAMPLE_SCORES``: each sample's Euclidean
    distance to its own class mean, to the nearest other class mean, and own / other (> 1: the
    nearest-class-mean classifier of Papyan et al. 2020's NC4 would pick another class), on the features of the
    headline collapse metrics (``score_export.HEADLINE_ORDER``): the embeddings an imported
    classifier reads, else the probe's last-epoch penultimate features, else the embeddings."""
    if classifier is None and probes.features is not None and probes.weights is not None:
        source, feats = "probe_final", probes.features[0, -1]
    else:
        source = f"imported:{classifier['name']}" if classifier is not None else "embeddings"
        feats = data.features if features is None else features
    d = nc.sample_mean_distances(feats, data.labels, n_classes=data.n_classes)
    return source, dict(zip(score_export.NC_SAMPLE_SCORES, (d.own, d.nearest_other, d.ratio), strict=True))


def collapse_rows(data: Dataset, probes: ProbeOutputs, *, classifier: dict | None,
                  features: np.ndarray | None = None) -> list[dict]:
    """Neural-collapse metrics (Papyan et al. 2020; Dang et al. 2023) from up to three sources:
    the embeddings' class means; the probe's penultimate features and last layer at every epoch
    (a curve, final epoch in full); and an imported classifier over the embeddings.
    ``features``: ``data.features`` when the caller already holds them."""
    rows: list[dict] = []
    feats = data.features if features is None else features
    rows += _metric_rows("embeddings", -1, nc.collapse_metrics(feats, data.labels, n_classes=data.n_classes),
                         data.classes)
    if probes.features is not None and probes.weights is not None:
        curve = nc.collapse_curve(probes.features[0], data.labels, weights=probes.weights,
                                  biases=probes.biases, n_classes=data.n_classes)
        for metric, per_epoch in curve.items():
            rows += [{"source": "probe", "epoch": e, "metric": metric, "class_label": None,
                      "value": _clean(v)} for e, v in enumerate(per_epoch)]
        final = nc.collapse_metrics(probes.features[0, -1], data.labels, weights=probes.weights[-1],
                                    biases=probes.biases[-1], n_classes=data.n_classes)
        rows += _metric_rows("probe_final", int(probes.weights.shape[0] - 1), final, data.classes)
    if classifier is not None:
        order = check_classifier_classes(classifier, data.classes)
        metrics = nc.collapse_metrics(feats, data.labels, weights=classifier["weights"][order],
                                      biases=classifier["bias"][order], n_classes=data.n_classes)
        rows += _metric_rows(f"imported:{classifier['name']}", -1, metrics, data.classes)
    return rows


def check_classifier_classes(classifier: dict, classes: list[str]) -> list[int]:
    """The classifier's row of each dataset class, in the dataset's order; ValueError when a class
    has none."""
    missing = [c for c in classes if c not in classifier["classes"]]
    if missing:
        raise ValueError(f"classifier {classifier['name']!r} has no row for the classes {missing} "
                         f"(its classes: {classifier['classes']}); import one trained on every label")
    return [classifier["classes"].index(c) for c in classes]


def _clean(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _metric_rows(source: str, epoch: int, metrics: nc.CollapseMetrics, classes: list[str]) -> list[dict]:
    as_dict = metrics.to_dict()
    rows = [{"source": source, "epoch": epoch, "metric": name, "class_label": None, "value": as_dict[name]}
            for name in nc.SCALAR_FIELDS]
    rows += [{"source": source, "epoch": epoch, "metric": name, "class_label": None, "value": float(as_dict[name])}
             for name in ("n_samples", "n_classes")]
    for name, values in as_dict["per_class"].items():
        rows += [{"source": source, "epoch": epoch, "metric": name, "class_label": cls, "value": v}
                 for cls, v in zip(classes, values, strict=True)]
    return rows
