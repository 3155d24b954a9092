"""The score job: probes, label-noise verdict, pruning scores and neural-collapse metrics for
every embedded sample, stored as one run (``thresher score``).

Every stage (and every pruning scorer) logs its start and its wall time through
:func:`backend.jobs.tracking.stage`, so a slow or memory-hungry stage is visible in the job log;
``bench/scale.py`` reads the same marks to time and measure each stage at 1M rows. Above
``LARGE_N`` rows the probes use a cheaper recipe (``score_inputs.probe_config_for``) and one
neighbour search serves the label-noise vote and the kNN scores (``pruning_stage``). Each part
has its stage module (``label_noise_stage``, ``pruning_stage``, ``collapse_stage``); this one
orders them, releases what the next no longer needs and writes what they return.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

from backend.jobs.collapse_stage import check_classifier_classes, collapse_stage
from backend.jobs.dataset import load_dataset
from backend.jobs.health_stage import health_stage
from backend.jobs.label_noise_stage import label_noise_stage
from backend.jobs.project_job import default_embedding_key
from backend.jobs.pruning_stage import (
    SHARED_KNN_ABOVE,
    pruning_scores,
    reads_logits,
    shared_neighbors,
)
from backend.jobs.runner import LocalRunner, Runner
from backend.jobs.score_inputs import probe_config_for, probe_task_map, run_probes
from backend.jobs.tracking import recorded_run, stage
from backend.scoring.pruning import registry
from backend.storage import model_outputs, results
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
        check_classifier_classes(classifier, data.classes)
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
        # the label-noise and geometry stages make their own large temporaries (the peak RSS
        # per stage at 1M rows: bench/results/scale.json).
        _say(show_progress, f"pruning scores: {', '.join(names)}")
        dynamics = reads_logits(names)
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
            collapse = collapse_stage(data, probes, classifier=classifier)
            results.write_collapse(ws, run.run_id, collapse.rows)
            results.write_scores(ws, run.run_id, data.ids, collapse.sample_scores)
            nc_source = collapse.sample_source
            del collapse
        with stage(log, "dataset health", show=show_progress):
            health = health_stage(ws, run.run_id, data, neighbors=neighbors)
        seconds = time.perf_counter() - start
        n_issues = int(verdict["is_label_issue"].sum())
        run.summary = {"n_samples": len(data.ids), "n_label_issues": n_issues, "scorers": names,
                       "probe_source": probes.source, "nc_sample_source": nc_source, "seconds": round(seconds, 1),
                       "runner": runner.describe(), "n_relabeled_by_decisions": data.n_relabeled,
                       "health": health}
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

