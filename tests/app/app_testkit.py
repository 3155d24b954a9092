"""Shared by the app tests: a small workspace built in a second, without torch or UMAP.

Three classes of 8x8 grey PNGs (a class-specific stripe pattern plus noise) under
``train/`` and ``test/``, ingested through the real ingest job; pixel vectors as the
embedding; a PCA projection through the real projection job. :func:`add_score_run` adds a
fake but consistent scoring run through storage (no probes, no torch).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from streamlit.testing.v1 import AppTest

from backend.config import ProjectionSettings
from backend.jobs.ingest_job import ingest
from backend.jobs.project_job import project
from backend.scoring.neural_collapse import SCALAR_FIELDS
from backend.storage import Workspace, results, runs

MAIN_SCRIPT = Path(__file__).resolve().parents[2] / "app" / "main.py"
CLASSES = ("circle", "square", "stripe")
PER_SPLIT = {"train": 8, "test": 4}
N_SAMPLES = len(CLASSES) * sum(PER_SPLIT.values())
EMBEDDING_KEY = "pixels-8"
APP_TIMEOUT_S = 60

#: What :func:`add_score_run` writes: these pruning scores (plus one detector score), two flagged
#: samples per class (suggested label: the next class), and collapse metrics of three sources.
SCORERS = ("el2n", "aum", "forgetting", "moderate", "semdedup", "sim")
FLAGGED_PER_CLASS = 2
N_FLAGGED = FLAGGED_PER_CLASS * len(CLASSES)
DETECTORS = ("confident_learning", "knn_vote", "aum")
CURVE_EPOCHS = 5
#: Dataset-level collapse metrics as the score job stores them (``neural_collapse.SCALAR_FIELDS``).
COLLAPSE_SCALARS = SCALAR_FIELDS  # every scalar a collapse row stores
CLASSIFIER_ONLY = ("equinorm_w", "equiangularity_w", "max_angle_w", "etf_distance_w",
                   "of_distance_w", "nc3", "nc4")  # fmt: skip
PER_CLASS = ("count", "within_trace", "between_norm", "within_between_ratio", "nc1")
#: The per-sample own / nearest-other class-mean distance ratios of the first samples (by id) that
#: :func:`add_score_run` makes larger than 1; every other ratio is below 3.
NEARER_OTHER = (4.0, 3.5)


def write_images(folder: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for split, n in PER_SPLIT.items():
        for k, name in enumerate(CLASSES):
            (folder / split / name).mkdir(parents=True, exist_ok=True)
            base = np.zeros((8, 8))
            base[:, k * 3 : k * 3 + 2] = 200
            for i in range(n):
                pixels = np.clip(base + rng.normal(0, 30, (8, 8)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels, mode="L").save(folder / split / name / f"{name}-{i}.png")


def add_pixel_embeddings(ws: Workspace, key: str = EMBEDDING_KEY) -> None:
    """Store every sample's raw pixels, L2-normalised, as embedding ``key`` (no torch needed)."""
    samples = ws.samples(columns=["id", "path"]).sort_values("id")
    vectors = np.stack(
        [np.asarray(Image.open(p).convert("L"), dtype=np.float32).ravel() for p in samples["path"]]
    )
    norms = np.linalg.norm(vectors, axis=1)
    ws.append_embeddings(key, samples["id"].tolist(), vectors / norms[:, None], norms)


def build_workspace(root: Path, images: Path) -> Path:
    """Ingest ``images``, store pixel embeddings and a PCA projection; returns the workspace folder."""
    write_images(images)
    ws = Workspace.open(root, create=True)
    ingest(ws, images)
    add_pixel_embeddings(ws)
    project(ws, ProjectionSettings(method="pca"), embedding_key=EMBEDDING_KEY)
    return ws.root


def build_digits_workspace(root: Path) -> Path:
    """The digits demo (1,797 real 8x8 digits) with pixel embeddings and a PCA map, in ~3 s.

    ``thresher demo`` makes the same samples but projects with UMAP, which costs ~30 s of numba
    compilation; the map's look is not what the browser test checks.
    """
    ws = Workspace.open(root, create=True)
    ingest(ws, "demo")
    add_pixel_embeddings(ws)
    project(ws, ProjectionSettings(method="pca"), embedding_key=EMBEDDING_KEY)
    return ws.root


def build_scored_workspace(base: Path) -> Path:
    """:func:`build_workspace` under ``base`` plus one :func:`add_score_run`."""
    root = build_workspace(base / "workspace", base / "images")
    add_score_run(Workspace.open(root))
    return root


def label_issue_frame(samples: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """The verdict columns for ``samples`` (id, label, sorted by id): the first
    :data:`FLAGGED_PER_CLASS` ids of each class are flagged, suggested as the next class."""
    rng = np.random.default_rng(seed)
    rank = samples.groupby("label").cumcount().to_numpy()
    flagged = rank < FLAGGED_PER_CLASS
    classes = sorted(samples["label"].unique())
    next_class = {c: classes[(k + 1) % len(classes)] for k, c in enumerate(classes)}
    detectors = np.where(rank % 2 == 0, "confident_learning,knn_vote", "aum")
    return pd.DataFrame(
        {
            "id": samples["id"].to_numpy(),
            "label_issue_score": np.where(
                flagged, 0.6 + 0.4 * rng.random(len(samples)), 0.5 * rng.random(len(samples))
            ),
            "is_label_issue": flagged,
            "suggested_label": np.where(
                flagged, samples["label"].map(next_class), samples["label"]
            ),
            "detectors": np.where(flagged, detectors, ""),
        }
    )


def collapse_rows(classes: list[str], imbalance_ratio: float) -> list[dict]:
    """Rows of a run's ``collapse`` table: embeddings (no classifier), a probe curve that falls
    over :data:`CURVE_EPOCHS` epochs, and the probe's last epoch with per-class rows."""
    rows: list[dict] = []
    sources = (("embeddings", -1, 1.0), ("probe_final", CURVE_EPOCHS - 1, 0.1))
    for source, epoch, scale in sources:
        for k, metric in enumerate(COLLAPSE_SCALARS):
            value = scale * (k + 1) / 10
            if metric == "imbalance_ratio":
                value = imbalance_ratio
            elif source == "embeddings" and metric in CLASSIFIER_ONLY:
                value = None
            rows.append(
                dict(source=source, epoch=epoch, metric=metric, class_label=None, value=value)
            )
        for j, metric in enumerate(PER_CLASS):
            for c, label in enumerate(classes):
                value = 12.0 if metric == "count" else scale * (j + 1) * (c + 1) / 10
                rows.append(
                    dict(source=source, epoch=epoch, metric=metric, class_label=label, value=value)
                )
    for epoch in range(CURVE_EPOCHS):
        for metric in COLLAPSE_SCALARS:
            value = 1.0 / (epoch + 1) if metric != "imbalance_ratio" else imbalance_ratio
            rows.append(
                dict(source="probe", epoch=epoch, metric=metric, class_label=None, value=value)
            )
    return rows


def add_score_run(
    ws: Workspace, *, seed: int = 0, imbalance_ratio: float = 1.0, with_collapse: bool = True
) -> str:
    """A finished ``score`` run over every embedded sample, written through storage."""
    samples = ws.samples(columns=["id", "label"]).sort_values("id").reset_index(drop=True)
    ids, n = samples["id"].tolist(), len(samples)
    rng = np.random.default_rng(seed)
    classes = sorted(samples["label"].unique())
    config = {"classes": classes, "scorers": list(SCORERS), "probe": {"kind": "mlp"}}
    run_id = runs.start_run(ws, "score", config, embedding_key=EMBEDDING_KEY, seed=seed)
    scores = {
        "el2n": rng.random(n),
        "aum": rng.normal(size=n),
        "forgetting": rng.integers(0, 5, n).astype(float),
        "moderate": rng.random(n),
        "semdedup": (np.arange(n) % 12 == 5).astype(float),
        "sim": rng.random(n),
        "cl_self_confidence": rng.random(n),  # a label-noise detector's score
        "suggested_probability": 0.5 + 0.5 * rng.random(n),
    }
    if with_collapse:  # per-sample distances to the class means, as the score job stores them
        own, other = 0.5 + rng.random(n), 0.5 + rng.random(n)
        other[: len(NEARER_OTHER)] = own[: len(NEARER_OTHER)] / np.asarray(NEARER_OTHER)  # ratios > 1
        scores.update(nc_own_distance=own, nc_other_distance=other, nc_distance_ratio=own / other)
    results.write_scores(ws, run_id, ids, scores)
    verdict = label_issue_frame(samples, seed)
    results.write_label_issues(ws, run_id, verdict)
    if with_collapse:
        results.write_collapse(ws, run_id, collapse_rows(classes, imbalance_ratio))
    summary = {"n_samples": n, "n_label_issues": int(verdict["is_label_issue"].sum()),
               "scorers": list(SCORERS), "probe_source": "probes", "nc_sample_source": "probe_final"}  # fmt: skip
    runs.finish_run(ws, run_id, summary)
    return run_id


def metric_values(at: AppTest) -> dict[str, str]:
    """Every ``st.metric`` on the page as label -> shown value."""
    return {metric.label: metric.value for metric in at.metric}


def claim_health_counts(root: Path, counts: dict[str, int]) -> str:
    """Give the latest score run of the workspace at ``root`` a health summary with ``counts``
    (as if it had run the health checks); its run id."""
    ws = Workspace.open(root)
    run_id = runs.latest_run(ws, "score")["run_id"]
    summary = runs.get_run(ws, run_id)["summary"]
    ws.table("runs").update(where=f"run_id = '{run_id}'", values={"summary_json": json.dumps(
        {**summary, "health": {"counts": counts}})})
    return run_id
