"""The ``pixels`` embedder: each image resized to a small square and flattened.

No model and no torch: this is what the offline demo uses (8x8 digits), and a baseline that shows
whether a learned embedding adds anything over raw pixels.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from backend.embed.base import (
    DEFAULT_BATCH_SIZE,
    EmbeddedBatch,
    Embedder,
    EmbedderError,
    check_batching,
)
from backend.embed.images import ImageDecodeError, load_rgb

log = logging.getLogger(__name__)

DEFAULT_PIXELS_SIZE = 16
_PIXELS_NAME = re.compile(r"^pixels(?:-(\d+))?$")


def parse_pixels_model(model: str) -> int | None:
    """The side length asked for by ``"pixels"`` / ``"pixels-<size>"``, or None for another model.

    Raises
    ------
    EmbedderError
        For a pixels name with an unusable size (``"pixels-0"``, ``"pixels-x"``).
    """
    if model != "pixels" and not model.startswith("pixels-"):
        return None
    match = _PIXELS_NAME.match(model)
    size = int(match.group(1)) if match and match.group(1) else DEFAULT_PIXELS_SIZE
    if match is None or not 1 <= size <= 512:
        raise EmbedderError(
            f"{model!r} is not a pixels model: use 'pixels' ({DEFAULT_PIXELS_SIZE}x"
            f"{DEFAULT_PIXELS_SIZE}) or 'pixels-<size>' with a size from 1 to 512, e.g. 'pixels-8'"
        )
    return size


def pixel_vector(image: Image.Image, size: int) -> np.ndarray:
    """``image`` as RGB, resized to ``size`` x ``size`` (bilinear), flattened: float32 in [0, 1].

    Returns
    -------
    np.ndarray
        Shape (3 * size * size,), in row-major (height, width, channel) order.
    """
    resized = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    return (np.asarray(resized, dtype=np.float32) / 255.0).reshape(-1)


class PixelsEmbedder(Embedder):
    """Resized pixel vectors (``dim = 3 * size * size``); no text queries.

    Parameters
    ----------
    size : int
        Side length of the square each image is resized to.
    """

    def __init__(self, size: int = DEFAULT_PIXELS_SIZE) -> None:
        self.size = int(size)
        self.model = f"pixels-{self.size}"
        self.pretrained = None
        self.key = self.model
        self.dim = 3 * self.size * self.size
        self.device = "cpu"

    def iter_batches(
        self, paths: Sequence[str], *, batch_size: int = DEFAULT_BATCH_SIZE, num_workers: int = 0
    ) -> Iterator[EmbeddedBatch]:
        """Encode ``paths`` in batches; ``num_workers`` > 0 decodes in that many threads.

        Threads, not processes: PIL releases the GIL while decoding and resizing, and the work per
        image is far too small to pay for sending it to another process.
        """
        check_batching(batch_size, num_workers)
        executor = ThreadPoolExecutor(num_workers) if num_workers > 0 else None
        try:
            for start in range(0, len(paths), batch_size):
                positions = range(start, min(start + batch_size, len(paths)))
                batch_paths = [paths[i] for i in positions]
                if executor is None:
                    results = [self._encode_one(path) for path in batch_paths]
                else:
                    results = list(executor.map(self._encode_one, batch_paths))
                yield self._batch(positions, results)
        finally:
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        raise EmbedderError(
            f"the {self.model!r} embedder has no text encoder, so it cannot embed text queries; "
            "pick a CLIP model (e.g. `thresher embed --model ViT-B-32 --pretrained openai`)"
        )

    def _encode_one(self, path: str) -> np.ndarray | str:
        try:
            return pixel_vector(load_rgb(path), self.size)
        except ImageDecodeError as exc:
            return str(exc)

    def _batch(self, positions: range, results: list[np.ndarray | str]) -> EmbeddedBatch:
        encoded = [
            (pos, vec)
            for pos, vec in zip(positions, results, strict=True)
            if not isinstance(vec, str)
        ]
        failed = [
            (pos, vec) for pos, vec in zip(positions, results, strict=True) if isinstance(vec, str)
        ]
        vectors = (
            np.stack([vec for _, vec in encoded])
            if encoded
            else np.zeros((0, self.dim), dtype=np.float32)
        )
        return EmbeddedBatch(np.array([pos for pos, _ in encoded], dtype=np.int64), vectors, failed)
