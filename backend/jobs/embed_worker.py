"""The worker of ``thresher embed --ray``: one model per worker, one shard of image files per task.

A Ray actor builds the embedder once (on its GPU when it has one) and then encodes shard after
shard; the process that ran the command stores each shard as it comes back, so an interrupted
run keeps every finished shard and a rerun embeds only the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

#: Image files per task. Large enough that a GPU spends its time encoding, not waiting for the
#: next task; small enough that an interrupt loses little (the shard in flight per worker).
SHARD_IMAGES = 2048


@dataclass
class EmbeddedShard:
    """What a worker returns for one shard: ``positions`` (k,) into the shard's paths,
    ``unit`` (k, dim) L2-normalised float32 vectors and their original ``norms`` (k,),
    and ``failed`` ``(position, reason)`` for the files that could not be read."""

    start: int
    positions: np.ndarray
    unit: np.ndarray
    norms: np.ndarray
    failed: list[tuple[int, str]] = field(default_factory=list)


class EmbedWorker:
    """Holds one embedder; :meth:`embed` encodes one shard of paths."""

    def __init__(self, model: str, pretrained: str | None, device: str | None, batch_size: int | None,
                 num_workers: int | None, gpu_decode: bool = False):
        from backend.embed import get_embedder
        from backend.embed.base import default_num_workers

        self.embedder = get_embedder(model, pretrained, device=device, gpu_decode=gpu_decode)
        # None: what fits this worker's device (the largest batch that fits its GPU)
        self.batch_size = self.embedder.default_batch_size() if batch_size is None else batch_size
        self.num_workers = default_num_workers() if num_workers is None else num_workers

    def embed(self, start: int, paths: Sequence[str]) -> EmbeddedShard:
        from backend.jobs.embed_job import normalise_rows

        positions, vectors, failed = [], [], []
        for batch in self.embedder.iter_batches(paths, batch_size=self.batch_size, num_workers=self.num_workers):
            failed += batch.failed
            if len(batch.positions):
                positions.append(batch.positions)
                vectors.append(batch.vectors)
        dim = self.embedder.dim
        stacked = np.concatenate(vectors) if vectors else np.empty((0, dim), np.float32)
        unit, norms = normalise_rows(stacked, in_place=True)
        where = np.concatenate(positions) if positions else np.empty(0, np.int64)
        return EmbeddedShard(start, where, unit, norms, failed)


def shards(n: int, size: int = SHARD_IMAGES) -> list[tuple[int, int]]:
    """``(start, stop)`` of consecutive shards covering ``range(n)``."""
    if size < 1:
        raise ValueError(f"shard size must be at least 1, got {size}")
    return [(start, min(start + size, n)) for start in range(0, n, size)]
