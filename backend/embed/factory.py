"""``get_embedder``: a model name (and weights) in, a ready :class:`Embedder` out."""

from __future__ import annotations

import logging
import os

from backend.embed.base import Embedder, EmbedderError
from backend.embed.pixels import PixelsEmbedder, parse_pixels_model
from backend.embed.weights import RANDOM_WEIGHTS

log = logging.getLogger(__name__)


def get_embedder(
    model: str,
    pretrained: str | os.PathLike | None = None,
    *,
    device: str | None = None,
    allow_download: bool | None = None,
    precision: str = "auto",
    channels_last: bool | None = None,
    gpu_decode: bool = False,
) -> Embedder:
    """Build the embedder for ``model``.

    Parameters
    ----------
    model : str
        ``"pixels"`` / ``"pixels-<size>"`` (resized pixel vectors, no torch needed), or an
        open_clip model name such as ``"ViT-B-32"``.
    pretrained : str, path or None
        For open_clip models: a pretrained tag (``"openai"``), a local checkpoint file, or
        None / ``"none"`` for random weights. Pixels embedders take none.
    device : str or None
        None: CUDA when available, else CPU. Ignored by pixels embedders (always CPU).
    allow_download : bool or None
        Let open_clip download a tag's weights when they are not cached locally; None reads the
        environment variable ``THRESHER_ALLOW_DOWNLOADS`` (off unless 1/true/yes).
    precision, channels_last, gpu_decode
        For open_clip models, see :class:`backend.embed.openclip.OpenClipEmbedder`: autocast
        dtype ("auto": bfloat16 on CUDA, float32 on the CPU), channels-last (None: on CUDA), JPEG
        decoding on the GPU (falls back to the CPU, with a log line, without CUDA).

    Returns
    -------
    Embedder
        With ``key``, ``dim`` and ``device`` set and the model loaded.

    Raises
    ------
    EmbedderError
        Unknown model, weights that cannot be found or loaded, pretrained weights for pixels.
    ImportError
        torch or open_clip missing for a CLIP model (the message says what to install).
    """
    name = str(model).strip()
    if not name:
        raise EmbedderError("no model given: use 'pixels' or an open_clip name such as 'ViT-B-32'")
    size = parse_pixels_model(name)
    if size is not None:
        if pretrained is not None and str(pretrained).strip().lower() not in RANDOM_WEIGHTS:
            raise EmbedderError(
                f"the {name!r} embedder has no weights, so pretrained={str(pretrained)!r} makes "
                "no sense; drop it, or pick a CLIP model such as 'ViT-B-32'"
            )
        if device not in (None, "", "auto", "cpu"):
            log.info("the pixels embedder runs on the CPU; ignoring device=%r", device)
        if gpu_decode:
            log.info("the pixels embedder decodes on the CPU; ignoring gpu_decode")
        return PixelsEmbedder(size)
    from backend.embed.openclip import OpenClipEmbedder

    return OpenClipEmbedder(
        name,
        pretrained,
        device=device,
        allow_download=allow_download,
        precision=precision,
        channels_last=channels_last,
        gpu_decode=gpu_decode,
    )
