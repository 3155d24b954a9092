"""JPEG decoding and preprocessing on the model's device (nvJPEG through torchvision.io).

On a fast GPU, JPEG decoding on the CPU is what bounds end-to-end throughput: an H100 encodes
ViT-B-32 batches far faster than a few CPU cores decode and resize JPEGs. With GPU decoding the
loader workers only read the files' bytes (:func:`backend.embed.loader.read_jpeg_bytes`), and
this module decodes them with ``torchvision.io.decode_jpeg(..., device="cuda")``, then resizes,
crops and normalises them on the GPU with the model's own preprocessing transforms (torchvision's
tensor kernels; bicubic with antialias matches PIL's to about one grey level).

Every step except the decode itself is plain torch and runs on any device, so the tests run this
path on the CPU with a PIL decoder in place of nvJPEG.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)

# decode: encoded JPEG bytes (uint8 1-D tensors) -> RGB uint8 (3, H, W) tensors on the device
JpegDecoder = Callable[[list[torch.Tensor]], list[torch.Tensor]]


class TensorPreprocess:
    """The model's PIL preprocessing (resize, centre crop, to float, normalise) on uint8 tensors.

    Parameters
    ----------
    preprocess : torchvision Compose
        open_clip's eval transform: ``Resize``, ``CenterCrop``, RGB conversion, ``ToTensor``,
        ``Normalize``.

    Raises
    ------
    ValueError
        When the transform has a step other than those (e.g. open_clip's ``ResizeKeepRatio``):
        the caller then decodes on the CPU instead.
    """

    def __init__(self, preprocess: Any) -> None:
        import torchvision.transforms as transforms

        steps = list(getattr(preprocess, "transforms", [preprocess]))
        self._steps: list[Callable[[torch.Tensor], torch.Tensor]] = []
        for step in steps:
            name = getattr(step, "__name__", type(step).__name__)
            if isinstance(step, transforms.ToTensor):
                self._steps.append(_uint8_to_unit_float)
            elif isinstance(step, (transforms.Resize, transforms.CenterCrop, transforms.Normalize)):
                self._steps.append(step)
            elif name in ("MaybeConvertMode", "_convert_to_rgb"):
                continue  # the decoder already gives RGB
            else:
                raise ValueError(f"preprocessing step {name} has no tensor version here")

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) uint8 images of one size -> (N, 3, h, w) float32 model inputs."""
        for step in self._steps:
            images = step(images)
        return images

    def batch(self, images: Sequence[torch.Tensor]) -> torch.Tensor:
        """Preprocess (3, H, W) uint8 images of any sizes; one call per distinct size."""
        out: list[torch.Tensor | None] = [None] * len(images)
        by_size: dict[tuple[int, ...], list[int]] = {}
        for index, image in enumerate(images):
            by_size.setdefault(tuple(image.shape), []).append(index)
        for indices in by_size.values():
            processed = self(torch.stack([images[i] for i in indices]))
            for row, index in enumerate(indices):
                out[index] = processed[row]
        return torch.stack(out)


def _uint8_to_unit_float(images: torch.Tensor) -> torch.Tensor:
    return images.float().div_(255.0)


def nvjpeg_decoder(device: str) -> JpegDecoder:
    """``torchvision.io.decode_jpeg`` on ``device`` (RGB output), as a :data:`JpegDecoder`."""
    from torchvision.io import ImageReadMode, decode_jpeg

    def decode(encoded: list[torch.Tensor]) -> list[torch.Tensor]:
        return decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device)

    return decode


def pil_decoder(device: str = "cpu") -> JpegDecoder:
    """A :data:`JpegDecoder` made of PIL: what the tests put in place of nvJPEG on the CPU."""
    from PIL import Image

    def decode(encoded: list[torch.Tensor]) -> list[torch.Tensor]:
        images = []
        for data in encoded:
            with Image.open(io.BytesIO(data.numpy().tobytes())) as image:
                pixels = np.asarray(image.convert("RGB"))
            images.append(torch.from_numpy(pixels.copy()).permute(2, 0, 1).to(device))
        return images

    return decode


def probe_decoder(decoder: JpegDecoder) -> str | None:
    """None when ``decoder`` decodes a small JPEG correctly; else why not (for the log)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (16, 8), (200, 40, 10)).save(buffer, format="JPEG", quality=95)
    encoded = torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8)
    try:
        (image,) = decoder([encoded])
    except Exception as exc:  # noqa: BLE001 - any failure means: decode on the CPU instead
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    if tuple(image.shape) != (3, 8, 16) or abs(int(image[0, 4, 8]) - 200) > 8:
        return f"decoded a 16x8 test JPEG to shape {tuple(image.shape)} with wrong colours"
    return None


def decode_encoded(
    decoder: JpegDecoder,
    encoded: list[torch.Tensor],
    positions: np.ndarray,
    *,
    fallback: JpegDecoder | None = None,
) -> tuple[list[int], list[torch.Tensor], list[tuple[int, str]]]:
    """Decode ``encoded`` JPEGs in one call; on failure one by one, to find the bad files.

    A file ``decoder`` rejects goes to ``fallback`` (PIL: nvJPEG does not take every JPEG, e.g.
    CMYK ones); it fails only when that rejects it too.

    Returns
    -------
    (decoded positions, decoded uint8 (3, H, W) images, [(position, reason)] for the rest)
    """
    if not encoded:
        return [], [], []
    try:
        return [int(p) for p in positions], list(decoder(encoded)), []
    except Exception:  # noqa: BLE001 - one bad file fails the batched call; retried one by one
        log.debug("batched JPEG decode failed; decoding the %d files one by one", len(encoded))
    kept, images, failed = [], [], []
    for position, data in zip(positions, encoded, strict=True):
        try:
            (image,) = decoder([data])
        except Exception as exc:  # noqa: BLE001 - reported per file, never stops the run
            try:
                if fallback is None:
                    raise
                (image,) = fallback([data])
            except Exception:  # noqa: BLE001 - reported per file, never stops the run
                failed.append((int(position), f"corrupt image: JPEG decode failed ({exc})"))
                continue
        kept.append(int(position))
        images.append(image)
    return kept, images, failed
