"""Where and how an open_clip model runs: the device, the autocast dtype, a batch size that fits."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from backend.embed.base import EmbedderError

log = logging.getLogger(__name__)

MAX_CUDA_BATCH_SIZE = 1024
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def import_torch() -> Any:
    """The torch module, or an ImportError that says what to install."""
    try:
        import torch
    except ImportError as exc:
        raise ImportError(
            "CLIP models need torch: install it with `pip install torch torchvision "
            "open-clip-torch -c constraints.txt`; the 'pixels' embedder works without it"
        ) from exc
    return torch


def resolve_device(device: str | None) -> str:
    """``device``, or ``"cuda"`` when available else ``"cpu"`` for None / ``"auto"``."""
    torch = import_torch()
    if device is None or device in ("", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EmbedderError(
            f"device {device!r} was asked for but this torch ({torch.__version__}) sees no CUDA "
            "GPU; leave the device unset to use the CPU"
        )
    return device


def resolve_precision(precision: str, device: str) -> Any:
    """The autocast dtype for ``precision`` on ``device``; None means float32 (no autocast).

    ``"auto"``: bfloat16 on CUDA (float16 where the GPU has no bfloat16), float32 on the CPU,
    where bfloat16 autocast measured slower (bench/results/embed_throughput.json).
    """
    torch = import_torch()
    choice = (precision or "auto").strip().lower()
    if choice not in PRECISIONS:
        raise EmbedderError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    on_cuda = torch.device(device).type == "cuda"
    if choice == "auto":
        if not on_cuda:
            return None
        choice = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[choice]


def largest_fitting_batch(
    try_batch: Callable[[int], None],
    start: int,
    oom_error: type[BaseException],
    *,
    on_oom: Callable[[], None] | None = None,
) -> int:
    """The first of ``start``, ``start // 2``, ... ``1`` for which ``try_batch`` raises no
    ``oom_error`` (``on_oom`` runs after each failure, e.g. to free the CUDA cache)."""
    size = max(1, int(start))
    while True:
        try:
            try_batch(size)
        except oom_error:
            if size == 1:
                raise
            if on_oom is not None:
                on_oom()
            log.info("a batch of %d images does not fit in memory; trying %d", size, size // 2)
            size //= 2
            continue
        return size
