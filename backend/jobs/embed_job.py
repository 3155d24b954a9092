"""The embed job: encode every sample that has no vector yet for a model, batch by batch.

Resumable by construction: each batch is one Lance commit, and a rerun skips the ids already
stored, so an interrupted run loses at most the batch in flight.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass

import numpy as np

from backend.config import EmbedSettings
from backend.jobs.tracking import recorded_run
from backend.scoring.vectors import unit_rows
from backend.storage.workspace import Workspace

log = logging.getLogger(__name__)


@dataclass
class EmbedResult:
    run_id: str
    embedding_key: str
    n_embedded: int
    n_already: int
    n_failed: int
    seconds: float


def normalise_rows(vectors: np.ndarray, *, in_place: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalise rows; returns (unit vectors float32, original norms float32). Zero rows stay zero.

    Row blocks (:func:`backend.scoring.vectors.unit_rows`), so no (N, D) temporary beside the
    result; ``in_place=True`` writes the unit vectors over ``vectors`` when it is a writeable
    float32 array (the ingest of 1M x 512 saves 2 GB that way)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    unit = vectors if in_place and vectors.flags.writeable else np.empty_like(vectors)
    norms = unit_rows(vectors, unit)
    return unit, norms


def embed(ws: Workspace, settings: EmbedSettings | None = None, *, show_progress: bool = True) -> EmbedResult:
    """Embed the workspace's images with ``settings.model``; returns counts and the model key."""
    from backend.embed import get_embedder

    settings = settings or EmbedSettings()
    embedder = get_embedder(settings.model, settings.pretrained, device=settings.device)
    samples = ws.samples(columns=["id", "path"])
    with_image = samples[samples["path"].notna() & (samples["path"] != "")]
    done = ws.embedded_ids(embedder.key)
    todo = with_image[~with_image["id"].isin(done)].reset_index(drop=True)
    config = {"model": embedder.model, "pretrained": embedder.pretrained, "batch_size": settings.batch_size,
              "num_workers": settings.num_workers, "device": embedder.device, "dim": embedder.dim}
    ids = todo["id"].to_numpy(dtype=object)
    paths = todo["path"].tolist()
    n_failed = 0
    start = time.perf_counter()
    with recorded_run(ws, "embed", config, embedding_key=embedder.key) as run:
        bar = _progress_bar(len(paths), f"embed {embedder.key}", show_progress)
        with warnings.catch_warnings():
            # DataLoader workers only decode images with PIL; they never touch the Lance handles
            # that lance/lancedb warn about when a process that imported them forks.
            warnings.filterwarnings("ignore", message=".*fork.*")
            for batch in embedder.iter_batches(paths, batch_size=settings.batch_size,
                                               num_workers=settings.num_workers):
                for position, reason in batch.failed:
                    log.warning("could not embed %s: %s", paths[position], reason)
                n_failed += len(batch.failed)
                if len(batch.positions):
                    unit, norms = normalise_rows(batch.vectors)
                    ws.append_embeddings(embedder.key, ids[batch.positions], unit, norms)
                if bar is not None:
                    bar.update(len(batch.positions) + len(batch.failed))
        if bar is not None:
            bar.close()
        ws.compact(f"embeddings__{embedder.key}")
        seconds = time.perf_counter() - start
        n_embedded = len(paths) - n_failed
        run.summary = {"n_embedded": n_embedded, "n_already": len(done), "n_failed": n_failed,
                       "seconds": round(seconds, 2),
                       "images_per_second": round(n_embedded / seconds, 1) if seconds > 0 else None}
    return EmbedResult(run.run_id, embedder.key, n_embedded, len(done), n_failed, seconds)


def _progress_bar(total: int, desc: str, show: bool):
    if not show or total == 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img")
