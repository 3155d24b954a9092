"""A torch DataLoader over image files: decoding in worker processes, bad files dropped.

Each item is decoded and preprocessed in a worker (or in the calling process for
``num_workers=0``); the collate function stacks the good ones and reports the bad ones, so one
corrupt file never stops a run. With ``pass_jpeg_bytes`` the workers only read JPEG files and hand
their bytes on, for the model's device to decode (:mod:`backend.embed.gpu_decode`); other formats
are still decoded by PIL in the workers.

Workers are persistent and prefetch ``prefetch_factor`` batches each, so decoding the next
batches overlaps the model's work on this one; with ``pin_memory`` a background thread of the
calling process copies each batch into page-locked memory, which lets the host-to-GPU copy run
asynchronously (``non_blocking=True``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from backend.embed.compat import ensure_torchvision_importable
from backend.embed.images import ImageDecodeError, load_rgb

# A spawned worker imports this module (for ImageFileDataset) before it unpickles the transform,
# which may be made of torchvision classes: make torchvision importable there first.
ensure_torchvision_importable()

JPEG_SIGNATURE = b"\xff\xd8\xff"
DEFAULT_PREFETCH_FACTOR = 4

# (position, preprocessed float image (C, H, W) or encoded JPEG bytes uint8 (n,) or None, reason)
LoadedItem = tuple[int, "torch.Tensor | None", "str | None"]


@dataclass
class LoadedBatch:
    """One batch from :func:`image_loader`.

    Attributes
    ----------
    positions : np.ndarray
        int64 (k,): positions (into the loader's paths) of the rows of ``images``.
    images : torch.Tensor or None
        float32 (k, C, H, W), preprocessed; None when k == 0.
    encoded_positions : np.ndarray
        int64 (j,): positions of the entries of ``encoded``.
    encoded : list of torch.Tensor
        uint8 (n_bytes,) JPEG files still to decode (only with ``pass_jpeg_bytes``).
    failed : list of (int, str)
        ``(position, reason)`` of the files that could not be read or decoded.
    """

    positions: np.ndarray
    images: torch.Tensor | None
    encoded_positions: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    encoded: list[torch.Tensor] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)

    def pin_memory(self) -> LoadedBatch:
        """Page-locked copies of the tensors (called by the DataLoader's pinning thread)."""
        if self.images is not None:
            self.images = self.images.pin_memory()
        self.encoded = [data.pin_memory() for data in self.encoded]
        return self

    def __len__(self) -> int:
        return len(self.positions) + len(self.encoded_positions) + len(self.failed)


class ImageFileDataset(Dataset):
    """Image files decoded with PIL and passed through ``transform``.

    Parameters
    ----------
    paths : sequence of str
        Image files; item ``i`` is ``paths[i]``.
    transform : callable
        PIL RGB image -> tensor (e.g. open_clip's preprocess).
    pass_jpeg_bytes : bool
        Return a JPEG file's bytes (uint8, 1-D) instead of decoding it.
    """

    def __init__(
        self,
        paths: Sequence[str],
        transform: Callable[..., torch.Tensor],
        *,
        pass_jpeg_bytes: bool = False,
    ) -> None:
        self.paths = list(paths)
        self.transform = transform
        self.pass_jpeg_bytes = pass_jpeg_bytes

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, position: int) -> LoadedItem:
        if self.pass_jpeg_bytes:
            encoded = read_jpeg_bytes(self.paths[position])
            if encoded is not None:
                return position, encoded, None
        try:
            image = load_rgb(self.paths[position])
        except ImageDecodeError as exc:
            return position, None, str(exc)
        try:
            return position, self.transform(image), None
        except Exception as exc:  # noqa: BLE001 - one odd image must not stop the run; reported
            return position, None, f"preprocessing failed: {type(exc).__name__}: {exc}"


def read_jpeg_bytes(path: str) -> torch.Tensor | None:
    """The bytes of ``path`` as a uint8 tensor when it starts like a JPEG file, else None.

    None also for a file that cannot be read: PIL then reports why, as for any other file.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    if not data.startswith(JPEG_SIGNATURE):
        return None
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def collate_skip_failed(items: list[LoadedItem]) -> LoadedBatch:
    """Stack the decoded images of a batch, keep encoded JPEGs apart, list the failed ones."""
    decoded, encoded, failed = [], [], []
    for position, tensor, reason in items:
        if tensor is None:
            failed.append((position, reason))
        elif tensor.dtype == torch.uint8 and tensor.dim() == 1:
            encoded.append((position, tensor))
        else:
            decoded.append((position, tensor))
    return LoadedBatch(
        positions=np.array([position for position, _ in decoded], dtype=np.int64),
        images=torch.stack([image for _, image in decoded]) if decoded else None,
        encoded_positions=np.array([position for position, _ in encoded], dtype=np.int64),
        encoded=[data for _, data in encoded],
        failed=failed,
    )


def image_loader(
    paths: Sequence[str],
    transform: Callable[..., torch.Tensor],
    *,
    batch_size: int,
    num_workers: int,
    pin_memory: bool = False,
    pass_jpeg_bytes: bool = False,
    prefetch_factor: int = DEFAULT_PREFETCH_FACTOR,
) -> DataLoader:
    """An in-order DataLoader of :class:`LoadedBatch` over ``paths``.

    Workers are started with the platform's default method (fork on Linux). Under spawn or
    forkserver each worker unpickles the dataset, importing this module (and so running the
    torchvision shim) before the transform, so open_clip's transforms work there too.
    """
    workers = {"persistent_workers": True, "prefetch_factor": prefetch_factor} if num_workers else {}
    return DataLoader(
        ImageFileDataset(paths, transform, pass_jpeg_bytes=pass_jpeg_bytes),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate_skip_failed,
        pin_memory=pin_memory,
        **workers,
    )
