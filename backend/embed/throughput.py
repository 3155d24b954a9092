"""Measuring an open_clip embedder: model-only, end-to-end from files, and one image at a time.

What ``bench/embed_throughput.py`` times. End-to-end is :meth:`OpenClipEmbedder.iter_batches`,
the path ``thresher embed`` takes; the one-at-a-time loop is how most tools embed a folder
(open, preprocess, forward one image, copy back, next), kept as the baseline.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from backend.embed.images import load_rgb


def model_only_rate(embedder: Any, *, batch_size: int, n_batches: int, warmup: int = 1) -> float:
    """Images per second of the forward pass alone, on one random batch already on the device.

    Includes the copy of the (batch, dim) features back to the host, as end-to-end does.
    """
    import torch

    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch_size, 3, *embedder.image_size, generator=generator)
    images = images.to(embedder.device)
    for _ in range(warmup):
        embedder.encode_pixels(images).float().cpu()
    start = time.perf_counter()
    for _ in range(n_batches):
        embedder.encode_pixels(images).float().cpu()
    return batch_size * n_batches / (time.perf_counter() - start)


def end_to_end(
    embedder: Any, paths: Sequence[str], *, batch_size: int, num_workers: int
) -> tuple[np.ndarray, float]:
    """Vectors of ``paths`` (in order; failed files left out) through ``iter_batches``, and the
    images per second, counting the loader's start-up."""
    start = time.perf_counter()
    batches = list(embedder.iter_batches(paths, batch_size=batch_size, num_workers=num_workers))
    seconds = time.perf_counter() - start
    vectors = np.concatenate([batch.vectors for batch in batches])
    return vectors, len(vectors) / seconds


def one_at_a_time(embedder: Any, paths: Sequence[str]) -> tuple[np.ndarray, float]:
    """Vectors of ``paths`` encoded one image per forward pass in this process, and images/s.

    Same model, preprocessing, autocast and channels-last as the embedder; no workers, no
    batching, a device round trip per image.
    """
    rows = []
    start = time.perf_counter()
    for path in paths:
        image = embedder.preprocess(load_rgb(path)).unsqueeze(0)
        rows.append(embedder.encode_pixels(image).float().cpu().numpy()[0])
    seconds = time.perf_counter() - start
    return np.stack(rows).astype(np.float32, copy=False), len(rows) / seconds
