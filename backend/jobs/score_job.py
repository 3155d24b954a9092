"""The score job: probes, label-noise verdict, pruning scores and neural-collapse metrics for
every embedded sample, stored as one run (``thresher score``).

Every stage (and every pruning scorer) logs its start and its wall time through
:func:`backend.jobs.tracking.stage`, so a slow or memory-hungry stage is visible in the job log;
``bench/scale.py`` reads the same marks to time and measure each stage at 1M rows. Above
``LARGE_N`` rows the probes use a cheaper recipe (``score_inputs.probe_config_for``) and one
neighbour search serves the label-noise vote and the kNN scores (``pruning_stage``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

import numpy as np

from backend.jobs.dataset import Dataset, load_dataset
from backend.jobs.label_noise_stage import label_noise_stage
from backend.jobs.project_job import default_embedding_key
from backend.jobs.pruning_stage import (
    READS_LOGITS,
    SHARED_KNN_ABOVE,
    pruning_scores,
    shared_neighbors,
)
from backend.jobs.runner import LocalRunner, Runner
from backend.jobs.score_inputs import ProbeOutputs, probe_config_for, probe_task_map, run_probes
from backend.jobs.tracking import recorded_run, stage
from backend.scoring import neural_collapse as nc
from backend.scoring.pruning import registry
from backend.storage import model_outputs, results, score_export
from backend.storage.workspace import Workspace

log = logging.getLogger(__name__)


@dataclass
class ScoreResult:
    run_id: str
    embedding_key: str
    n_samples: int
    scorers: list[str]
    n_label_issues: int
    seconds: float


def parse_scorers(names: str | list[str] | None) -> list[str]:
    """Comma-separated or listed scorer names; None = every default scorer."""
    if names is None or names == "" or names == []:
        return list(registry.recommended_scorers())
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    for name in names:
        registry.get_score(name)  # ValueError listing the known names
    return list(names)


def score(ws: Workspace, *, embedding_key: str | None = None, scorers: str | list[str] | None = None,
          logits_name: str | None = None, classifier_name: str | None = None, device: str | None = None,
          show_progress: bool = True, runner: Runner | None = None) -> ScoreResult:
    """Score every embedded sample (module docstring); ``runner``: where the probes train
    (``backend.jobs.runner``: this process by default, or Ray workers; same numbers either way)."""
    runner = runner or LocalRunner()
    key = embedding_key or default_embedding_key(ws)
    names = parse_scorers(scorers)
    start = time.perf_counter()
    with stage(log, "load dataset", show=show_progress):
        data = load_dataset(ws, key)
    # wrong names fail now, before a run is recorded, not after minutes of probes
    classifier = _classifier(ws, classifier_name, key)
    if classifier is not None:
        _check_classifier_classes(classifier, data.classes)
    if logits_name:
        model_outputs.check_logits_name(ws, logits_name)
    config = probe_config_for(len(data.ids), device=device)
    run_config = {"scorers": names, "probe": asdict(config), "logits": logits_name, "classifier": classifier_name,
                  "classes": data.classes}
    with recorded_run(ws, "score", run_config, embedding_key=key, seed=config.seeds[0]) as run:
        _say(show_progress, f"probes: {config.kind}, {len(config.seeds)} seed(s), {config.n_folds} folds, "
             f"{config.epochs} epochs on {len(data.ids)} x {data.unit.shape[1]}")
        with stage(log, "probes", show=show_progress):
            probes = run_probes(data, config, logits_name=logits_name, ws=ws, runner=runner)
        # The training-dynamics scores first: they are the only readers of the (S, E, N, C)
        # logits, which are then released (3.2 GB at 1M rows x 8 epochs x 100 classes) before
        # the label-noise and geometry stages make their own large temporaries. Measured at 1M
        # (bench/scale.py), with the blockwise normalisation and the in-place probe logits: the
        # job's peak RSS went from 12.6 GB to 10.8 GB (the notes in bench/results/scale.json).
        _say(show_progress, f"pruning scores: {', '.join(names)}")
        dynamics = [n for n in names if n in READS_LOGITS]
        with stage(log, "pruning scores (training dynamics)", show=show_progress):
            values = pruning_scores(data, probes, dynamics, show_progress=show_progress)
        probes.logits = None
        with stage(log, "shared kNN", show=show_progress and len(data.ids) > SHARED_KNN_ABOVE):
            neighbors = shared_neighbors(data, names)
        with stage(log, "label noise", show=show_progress):
            verdict, detector_scores = label_noise_stage(data, probes, config, neighbors=neighbors,
                                                         task_map=probe_task_map(runner, config))
        with stage(log, "write label issues", show=show_progress):
            results.write_label_issues(ws, run.run_id, verdict)
        with stage(log, "pruning scores (geometry and probes)", show=show_progress):
            values.update(pruning_scores(data, probes, [n for n in names if n not in dynamics],
                                         neighbors=neighbors, show_progress=show_progress))
        values = {name: values[name] for name in names if name in values}  # the order asked for
        with stage(log, "write scores", show=show_progress):
            results.write_scores(ws, run.run_id, data.ids, {**values, **detector_scores})
        with stage(log, "neural collapse", show=show_progress):
            feats = data.features  # the unnormalised embeddings, computed once for both
            rows = collapse_rows(data, probes, classifier=classifier, features=feats)
            results.write_collapse(ws, run.run_id, rows)
            nc_source, nc_scores = sample_collapse_scores(data, probes, classifier=classifier, features=feats)
            results.write_scores(ws, run.run_id, data.ids, nc_scores)
            del feats
        seconds = time.perf_counter() - start
        n_issues = int(verdict["is_label_issue"].sum())
        run.summary = {"n_samples": len(data.ids), "n_label_issues": n_issues, "scorers": names,
                       "probe_source": probes.source, "nc_sample_source": nc_source, "seconds": round(seconds, 1),
                       "runner": runner.describe(), "n_relabeled_by_decisions": data.n_relabeled}
    return ScoreResult(run.run_id, key, len(data.ids), names, n_issues, seconds)


def _say(show: bool, text: str) -> None:
    if show:
        log.info(text)


def _classifier(ws: Workspace, name: str | None, key: str) -> dict | None:
    if name is None:
        return None
    stored = model_outputs.read_classifier(ws, name)
    if stored["embedding_key"] != key:
        raise ValueError(f"classifier {name!r} reads {stored['embedding_key']!r}, not {key!r}; "
                         f"pass --embedding {stored['embedding_key']}")
    return stored


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
        order = _check_classifier_classes(classifier, data.classes)
        metrics = nc.collapse_metrics(feats, data.labels, weights=classifier["weights"][order],
                                      biases=classifier["bias"][order], n_classes=data.n_classes)
        rows += _metric_rows(f"imported:{classifier['name']}", -1, metrics, data.classes)
    return rows


def _check_classifier_classes(classifier: dict, classes: list[str]) -> list[int]:
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
