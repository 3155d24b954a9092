"""A torch DataLoader over image files: PIL decoding in worker processes, bad files dropped.

Each item is decoded and preprocessed in a worker (or in the calling process for
``num_workers=0``); the collate function stacks the good ones and reports the bad ones, so one
corrupt file never stops a run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from backend.embed.compat import ensure_torchvision_importable
from backend.embed.images import ImageDecodeError, load_rgb

# A spawned worker imports this module (for ImageFileDataset) before it unpickles the transform,
# which may be made of torchvision classes: make torchvision importable there first.
ensure_torchvision_importable()

# (position, preprocessed image or None, reason or None)
LoadedItem = tuple[int, "torch.Tensor | None", "str | None"]
# (positions int64 (k,), images (k, C, H, W) or None when k == 0, [(position, reason)])
LoadedBatch = tuple[np.ndarray, "torch.Tensor | None", list[tuple[int, str]]]


class ImageFileDataset(Dataset):
    """Image files decoded with PIL and passed through ``transform``.

    Parameters
    ----------
    paths : sequence of str
        Image files; item ``i`` is ``paths[i]``.
    transform : callable
        PIL RGB image -> tensor (e.g. open_clip's preprocess).
    """

    def __init__(self, paths: Sequence[str], transform: Callable[..., torch.Tensor]) -> None:
        self.paths = list(paths)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, position: int) -> LoadedItem:
        try:
            image = load_rgb(self.paths[position])
        except ImageDecodeError as exc:
            return position, None, str(exc)
        try:
            return position, self.transform(image), None
        except Exception as exc:  # noqa: BLE001 - one odd image must not stop the run; reported
            return position, None, f"preprocessing failed: {type(exc).__name__}: {exc}"


def collate_skip_failed(items: list[LoadedItem]) -> LoadedBatch:
    """Stack the decoded images of a batch and list the failed ones with their reasons."""
    decoded = [(position, image) for position, image, _ in items if image is not None]
    failed = [(position, reason) for position, image, reason in items if image is None]
    positions = np.array([position for position, _ in decoded], dtype=np.int64)
    images = torch.stack([image for _, image in decoded]) if decoded else None
    return positions, images, failed


def image_loader(
    paths: Sequence[str],
    transform: Callable[..., torch.Tensor],
    *,
    batch_size: int,
    num_workers: int,
    pin_memory: bool = False,
) -> DataLoader:
    """An in-order DataLoader of :data:`LoadedBatch` over ``paths``.

    Workers are started with the platform's default method (fork on Linux). Under spawn or
    forkserver each worker unpickles the dataset, importing this module (and so running the
    torchvision shim) before the transform, so open_clip's transforms work there too.
    """
    return DataLoader(
        ImageFileDataset(paths, transform),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate_skip_failed,
        pin_memory=pin_memory,
    )
