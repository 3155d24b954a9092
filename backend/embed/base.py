"""The embedder contract: what the jobs layer calls, whatever the model behind it."""

from __future__ import annotations

import abc
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

_UNSAFE_KEY_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")
DEFAULT_BATCH_SIZE = 64
MAX_AUTO_WORKERS = 16


class EmbedderError(RuntimeError):
    """An embedder cannot be built or cannot do what was asked; the message says what to do."""


@dataclass
class EmbeddedBatch:
    """The result of encoding one batch of image files.

    Attributes
    ----------
    positions : np.ndarray
        int64, shape (k,): indices into the ``paths`` given to :meth:`Embedder.iter_batches` of
        the images encoded in this batch, in order.
    vectors : np.ndarray
        float32, shape (k, dim): one row per position, **not** normalised (the caller
        L2-normalises and keeps the norm).
    failed : list of (int, str)
        ``(position, reason)`` for each image of the batch that could not be read or decoded.
    """

    positions: np.ndarray
    vectors: np.ndarray
    failed: list[tuple[int, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.positions = np.asarray(self.positions, dtype=np.int64).reshape(-1)
        self.vectors = np.asarray(self.vectors, dtype=np.float32)
        if self.vectors.ndim != 2 or len(self.vectors) != len(self.positions):
            raise ValueError(
                f"vectors must have shape (len(positions), dim); got {self.vectors.shape} for "
                f"{len(self.positions)} positions"
            )


class Embedder(abc.ABC):
    """Turns image files (and, for CLIP models, texts) into vectors of one fixed size.

    Attributes
    ----------
    key : str
        Storage-safe name of what produced the vectors (only ``[A-Za-z0-9_.-]``), e.g.
        ``"pixels-16"``, ``"ViT-B-32__openai"``, ``"ViT-S-32__random"``,
        ``"ViT-B-32__ckpt-1a2b3c4d"``. Two embedders with the same key give the same vectors.
    model : str
        The model name as given.
    pretrained : str or None
        The weights, as :func:`backend.embed.get_embedder` takes them back: a pretrained tag, an
        absolute checkpoint path, or None for random / no weights.
    dim : int
        Length of each vector.
    device : str
        Where the encoding runs (``"cpu"``, ``"cuda"``, ...).
    """

    key: str
    model: str
    pretrained: str | None
    dim: int
    device: str

    @abc.abstractmethod
    def iter_batches(
        self, paths: Sequence[str], *, batch_size: int = DEFAULT_BATCH_SIZE, num_workers: int = 0
    ) -> Iterator[EmbeddedBatch]:
        """Encode the image files ``paths`` batch by batch, in order.

        A file that is missing or cannot be decoded is reported in ``EmbeddedBatch.failed`` and
        never raises. Every position of ``paths`` appears exactly once, either in ``positions``
        or in ``failed``.

        Parameters
        ----------
        paths : sequence of str
            Image files.
        batch_size : int
            Images per yielded batch (the last one may be shorter).
        num_workers : int
            Decoding workers; 0 decodes in the calling process.
        """

    def default_batch_size(self) -> int:
        """Images per batch when none is asked for (an embedder on a GPU picks what fits)."""
        return DEFAULT_BATCH_SIZE

    @abc.abstractmethod
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` into the image space: float32, shape (len(texts), dim), not normalised.

        Raises
        ------
        EmbedderError
            When the model has no text tower.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key={self.key!r}, dim={self.dim}, device={self.device!r})"


def storage_safe(text: str) -> str:
    """``text`` with every run of characters outside ``[A-Za-z0-9_.-]`` replaced by ``-``."""
    return _UNSAFE_KEY_CHARS.sub("-", text).strip("-") or "unnamed"


def check_batching(batch_size: int, num_workers: int) -> None:
    """Raise ValueError for a batch size below 1 or a negative number of workers."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if num_workers < 0:
        raise ValueError(f"num_workers must be 0 or more, got {num_workers}")


def default_num_workers() -> int:
    """Decoding workers when none are asked for: the cores this process may use, less one for
    the model's process, at least 1 and at most :data:`MAX_AUTO_WORKERS`."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min((cores or 1) - 1, MAX_AUTO_WORKERS))
