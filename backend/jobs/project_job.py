"""The projection job: one embedding to 2-D, stored as a run."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from backend.config import ProjectionSettings
from backend.jobs.tracking import recorded_run
from backend.scoring.projection import project_2d
from backend.storage import runs
from backend.storage.errors import NotFoundError
from backend.storage.workspace import Workspace


@dataclass
class ProjectResult:
    run_id: str
    embedding_key: str
    n_points: int
    seconds: float


def default_embedding_key(ws: Workspace) -> str:
    """The only stored embedding, else the one of the latest finished embed or ingest run."""
    keys = ws.embedding_keys()
    if not keys:
        raise NotFoundError(f"{ws.root} has no embeddings yet; run `thresher embed --workspace {ws.root}` first")
    if len(keys) == 1:
        return keys[0]
    for kind in ("embed", "ingest"):
        latest = runs.latest_run(ws, kind)
        key = latest and (latest["embedding_key"] or latest["summary"].get("embedding_key"))
        if key in keys:
            return key
    return keys[0]


def project(ws: Workspace, settings: ProjectionSettings | None = None, *,
            embedding_key: str | None = None) -> ProjectResult:
    settings = settings or ProjectionSettings()
    key = embedding_key or default_embedding_key(ws)
    ids, vectors, _ = ws.load_embeddings(key)
    start = time.perf_counter()
    with recorded_run(ws, "project", asdict(settings), embedding_key=key, seed=settings.seed) as run:
        xy = project_2d(vectors, method=settings.method, n_neighbors=settings.n_neighbors,
                        min_dist=settings.min_dist, metric=settings.metric, seed=settings.seed,
                        fit_sample=settings.fit_sample)
        ws.write_projection(run.run_id, ids, xy)
        seconds = time.perf_counter() - start
        run.summary = {"n_points": len(ids), "seconds": round(seconds, 2)}
    return ProjectResult(run.run_id, key, len(ids), seconds)
