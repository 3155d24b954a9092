"""Shared by the app tests: a small workspace built in a second, without torch or UMAP.

Three classes of 8x8 grey PNGs (a class-specific stripe pattern plus noise) under
``train/`` and ``test/``, ingested through the real ingest job; pixel vectors as the
embedding; a PCA projection through the real projection job.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from streamlit.testing.v1 import AppTest

from backend.config import ProjectionSettings
from backend.jobs.ingest_job import ingest
from backend.jobs.project_job import project
from backend.storage import Workspace

MAIN_SCRIPT = Path(__file__).resolve().parents[2] / "app" / "main.py"
CLASSES = ("circle", "square", "stripe")
PER_SPLIT = {"train": 8, "test": 4}
N_SAMPLES = len(CLASSES) * sum(PER_SPLIT.values())
EMBEDDING_KEY = "pixels-8"
APP_TIMEOUT_S = 60


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


def metric_values(at: AppTest) -> dict[str, str]:
    """Every ``st.metric`` on the page as label -> shown value."""
    return {metric.label: metric.value for metric in at.metric}
