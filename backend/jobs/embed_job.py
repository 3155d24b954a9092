"""The embed job: encode every sample that has no vector yet for a model, batch by batch.

Resumable by construction: each batch is one Lance commit, and a rerun skips the ids already
stored, so an interrupted run loses at most the batches in flight (the one being stored and the one
the embedder encodes ahead).
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass

import numpy as np

from backend.config import EmbedSettings
from backend.jobs.runner import LocalRunner, Runner
from backend.jobs.tracking import recorded_run, stage
from backend.scoring.vectors import unit_rows
from backend.storage import vector_index
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


def embed(ws: Workspace, settings: EmbedSettings | None = None, *, show_progress: bool = True,
          runner: Runner | None = None) -> EmbedResult:
    """Embed the workspace's images with ``settings.model``; returns counts and the model key.

    ``runner``: this process by default (batch by batch); a Ray runner encodes shards of
    ``SHARD_IMAGES`` files on workers that each hold the model (one per GPU), and this process
    stores each shard as it arrives (``backend.jobs.embed_worker``).
    """
    from backend.embed import get_embedder
    from backend.embed.base import check_batching, default_num_workers

    settings = settings or EmbedSettings()
    runner = runner or LocalRunner()
    remote = runner.kind == "ray"
    # on Ray the workers encode; this copy only checks the model and weights load (on the CPU)
    embedder = get_embedder(settings.model, settings.pretrained, device="cpu" if remote else settings.device,
                            gpu_decode=settings.gpu_decode and not remote)
    key = embedder.key
    samples = ws.samples(columns=["id", "path"])
    with_image = samples[samples["path"].notna() & (samples["path"] != "")]
    done = ws.embedded_ids(key)
    todo = with_image[~with_image["id"].isin(done)].reset_index(drop=True)
    # None: picked per embedder (on Ray by each worker, for its own device and node)
    batch_size = settings.batch_size
    if batch_size is None and not remote:
        batch_size = embedder.default_batch_size()
    num_workers = settings.num_workers
    if num_workers is None and not remote:
        num_workers = default_num_workers()
    check_batching(1 if batch_size is None else batch_size,  # before anything is written
                   0 if num_workers is None else num_workers)
    config = {"model": embedder.model, "pretrained": embedder.pretrained, "batch_size": batch_size,
              "num_workers": num_workers, "device": "ray workers" if remote else embedder.device,
              "dim": embedder.dim,
              "gpu_decode": settings.gpu_decode if remote else getattr(embedder, "gpu_decode", False)}
    if remote:  # the workers load their own copies (from the resolved model and weights): free this one
        worker_args = (embedder.model, embedder.pretrained, settings.device, batch_size, num_workers,
                       settings.gpu_decode)
        del embedder
    ids = todo["id"].to_numpy(dtype=object)
    paths = todo["path"].tolist()
    start = time.perf_counter()
    with recorded_run(ws, "embed", config, embedding_key=key) as run:
        bar = _progress_bar(len(paths), f"embed {key}", show_progress)
        if remote:
            n_failed = _embed_on_workers(ws, runner, worker_args, key, ids, paths, bar,
                                         gpu=settings.device != "cpu")
        else:
            n_failed = _embed_here(ws, embedder, batch_size, num_workers, ids, paths, bar)
        if bar is not None:
            bar.close()
        ws.compact(f"embeddings__{key}")
        with stage(log, "vector index"):  # only above the size where exact search gets slow
            indexed = vector_index.ensure_index(ws, key)
        seconds = time.perf_counter() - start
        n_embedded = len(paths) - n_failed
        run.summary = {"n_embedded": n_embedded, "n_already": len(done), "n_failed": n_failed,
                       "seconds": round(seconds, 2), "runner": runner.describe(),
                       "images_per_second": round(n_embedded / seconds, 1) if seconds > 0 else None,
                       "vector_index_built": indexed}
    return EmbedResult(run.run_id, key, n_embedded, len(done), n_failed, seconds)


def _embed_here(ws: Workspace, embedder, batch_size: int, num_workers: int, ids: np.ndarray, paths: list[str],
                bar) -> int:
    """Encode in this process, storing every batch; returns the number of failed files.

    ``embedder.iter_batches`` is the fast path that ``bench/embed_throughput.py`` measures: decoding in
    worker processes (or on the GPU), pinned memory, one batch in flight ahead."""
    n_failed = 0
    with warnings.catch_warnings():
        # DataLoader workers only decode images with PIL; they never touch the Lance handles
        # that lance/lancedb warn about when a process that imported them forks.
        warnings.filterwarnings("ignore", message=".*fork.*")
        for batch in embedder.iter_batches(paths, batch_size=batch_size, num_workers=num_workers):
            for position, reason in batch.failed:
                log.warning("could not embed %s: %s", paths[position], reason)
            n_failed += len(batch.failed)
            if len(batch.positions):
                unit, norms = normalise_rows(batch.vectors)
                ws.append_embeddings(embedder.key, ids[batch.positions], unit, norms)
            if bar is not None:
                bar.update(len(batch.positions) + len(batch.failed))
    return n_failed


def _embed_on_workers(ws: Workspace, runner: Runner, worker_args: tuple, key: str, ids: np.ndarray,
                      paths: list[str], bar, *, gpu: bool) -> int:
    """Encode shards on the runner's model-holding workers (``EmbedWorker(*worker_args)``),
    storing each shard as it arrives; returns the number of failed files."""
    from backend.jobs.embed_worker import EmbedWorker, shards

    tasks = [(start, paths[start:stop]) for start, stop in shards(len(paths))]
    if not tasks:  # everything is stored already: start no worker (each would load the model)
        return 0
    n_failed = 0
    for _, shard in runner.actor_map_unordered(EmbedWorker, worker_args, "embed", tasks, gpu=gpu):
        for position, reason in shard.failed:
            log.warning("could not embed %s: %s", paths[shard.start + position], reason)
        n_failed += len(shard.failed)
        if len(shard.positions):
            ws.append_embeddings(key, ids[shard.start + shard.positions], shard.unit, shard.norms)
        if bar is not None:
            bar.update(len(shard.positions) + len(shard.failed))
    return n_failed


def _progress_bar(total: int, desc: str, show: bool):
    if not show or total == 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img")
