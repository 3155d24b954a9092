"""open_clip models as embedders: image batches through a DataLoader, text through the tokenizer.

torch and open_clip are imported here and nowhere else in Thresher's embed path; open_clip only
after :func:`backend.embed.compat.ensure_torchvision_importable` ran.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from backend.embed.base import EmbeddedBatch, Embedder, EmbedderError, check_batching, storage_safe
from backend.embed.compat import import_open_clip
from backend.embed.weights import WeightsChoice, check_model_name, resolve_weights

log = logging.getLogger(__name__)

TEXT_BATCH_SIZE = 256
_PREPROCESS_KEYS = {
    "mean": "image_mean",
    "std": "image_std",
    "interpolation": "image_interpolation",
    "resize_mode": "image_resize_mode",
}  # tag config key -> create_model_and_transforms


def _import_torch() -> Any:
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
    torch = _import_torch()
    if device is None or device in ("", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EmbedderError(
            f"device {device!r} was asked for but this torch ({torch.__version__}) sees no CUDA "
            "GPU; leave the device unset to use the CPU"
        )
    return device


class OpenClipEmbedder(Embedder):
    """An open_clip model (CLIP and relatives) in eval mode, on ``device``.

    Parameters
    ----------
    model : str
        An open_clip model name (``open_clip.list_models()``), e.g. ``"ViT-B-32"``.
    pretrained : str or None
        A pretrained tag (``"openai"``; from the local cache unless downloads are allowed), a local
        checkpoint file (a state_dict saved with ``torch.save``, an open_clip training checkpoint
        with a ``"state_dict"`` entry, or anything else ``open_clip.load_checkpoint`` reads), or
        None / ``"none"`` for random weights.
    device : str or None
        None picks CUDA when available, else CPU. On CUDA the forward passes run under
        ``torch.autocast`` (float16); vectors come back as float32 either way.
    allow_download : bool or None
        Let open_clip download a tag's weights when they are not cached; None reads
        ``THRESHER_ALLOW_DOWNLOADS``.

    Raises
    ------
    EmbedderError
        Unknown model name, weights that cannot be found or loaded, an unavailable device.
    """

    def __init__(
        self,
        model: str,
        pretrained: str | os.PathLike | None = None,
        *,
        device: str | None = None,
        allow_download: bool | None = None,
    ) -> None:
        self._torch = _import_torch()
        open_clip = import_open_clip()
        name = check_model_name(open_clip, model)
        weights = resolve_weights(open_clip, name, pretrained, allow_download=allow_download)
        self.model = model
        # What to give get_embedder to get this embedder back, from any working directory.
        self.pretrained = {"random": None, "file": weights.checkpoint, "tag": weights.label}[
            weights.kind
        ]
        self.device = resolve_device(device)
        self.key = f"{storage_safe(name)}__{weights.label}"
        self._name = name
        self._net, self._preprocess = _create_model(open_clip, name, weights, self.device)
        self._tokenizer = None
        self.dim = self._output_dim()
        log.info("loaded %s (%s weights) on %s, dim %d", name, weights.kind, self.device, self.dim)

    def iter_batches(
        self, paths: Sequence[str], *, batch_size: int = 64, num_workers: int = 0
    ) -> Iterator[EmbeddedBatch]:
        """Encode ``paths`` in order; ``num_workers`` DataLoader processes decode and preprocess."""
        from backend.embed.loader import image_loader

        check_batching(batch_size, num_workers)
        if len(paths) == 0:
            return
        loader = image_loader(
            paths,
            self._preprocess,
            batch_size=batch_size,
            num_workers=num_workers,
            pin_memory=self._on_cuda,
        )
        for positions, images, failed in loader:
            if images is None:
                vectors = np.zeros((0, self.dim), dtype=np.float32)
            else:
                vectors = self._encode_images(images)
            yield EmbeddedBatch(positions, vectors, failed)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Text embeddings in the image space: float32, shape (len(texts), dim), not normalised."""
        if isinstance(texts, str):
            raise TypeError("encode_texts takes a sequence of strings, not one string")
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        tokenizer = self._get_tokenizer()
        chunks = []
        for start in range(0, len(texts), TEXT_BATCH_SIZE):
            tokens = tokenizer(texts[start : start + TEXT_BATCH_SIZE]).to(self.device)
            with self._torch.inference_mode(), self._autocast():
                chunks.append(self._net.encode_text(tokens).float().cpu().numpy())
        return np.concatenate(chunks).astype(np.float32, copy=False)

    @property
    def _on_cuda(self) -> bool:
        return self._torch.device(self.device).type == "cuda"

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self._on_cuda:
            return self._torch.autocast(device_type="cuda")
        return contextlib.nullcontext()

    def _encode_images(self, images: Any) -> np.ndarray:
        # inference_mode and autocast are entered per batch, never across a `yield`: they are
        # thread-local switches that would otherwise leak into the caller's code.
        images = images.to(self.device, non_blocking=True)
        with self._torch.inference_mode(), self._autocast():
            features = self._net.encode_image(images)
        return features.float().cpu().numpy()

    def _get_tokenizer(self) -> Any:
        if self._tokenizer is None:
            open_clip = import_open_clip()
            try:
                self._tokenizer = open_clip.get_tokenizer(self._name)
            except Exception as exc:  # noqa: BLE001 - re-raised with what to do
                raise EmbedderError(
                    f"cannot load the tokenizer of {self._name} ({type(exc).__name__}: {exc}); "
                    "models with a Hugging Face text tower need it cached locally"
                ) from exc
        return self._tokenizer

    def _output_dim(self) -> int:
        dim = getattr(getattr(self._net, "visual", None), "output_dim", None)
        if isinstance(dim, int) and dim > 0:
            return dim
        size = self._net.visual.preprocess_cfg.get("size", 224)
        height, width = (size, size) if isinstance(size, int) else size
        dummy = self._torch.zeros(1, 3, height, width)
        return int(self._encode_images(dummy).shape[1])


def _create_model(
    open_clip: Any, name: str, weights: WeightsChoice, device: str
) -> tuple[Any, Any]:
    """Build the model and its eval preprocess; every failure becomes an EmbedderError."""
    kwargs: dict[str, Any] = {"device": device, "pretrained_text": False}
    pretrained: str | None = None
    if weights.kind == "tag":
        # Load a cached tag by path with the tag's preprocessing, exactly what open_clip does after
        # its (here skipped) download step; and use QuickGELU where the weights were trained with it.
        pretrained = weights.checkpoint or weights.label
        for config_key, argument in _PREPROCESS_KEYS.items():
            if weights.tag_config.get(config_key) is not None:
                kwargs[argument] = weights.tag_config[config_key]
        kwargs["force_quick_gelu"] = bool(weights.tag_config.get("quick_gelu", False))
    elif weights.kind == "file":
        pretrained = weights.checkpoint
    try:
        net, _, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=pretrained, **kwargs
        )
    except Exception as exc:  # noqa: BLE001 - re-raised with what to do
        raise EmbedderError(_creation_advice(name, weights, exc)) from exc
    net.eval()
    return net, preprocess


def _creation_advice(name: str, weights: WeightsChoice, exc: BaseException) -> str:
    what = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    if weights.kind == "file":
        return (
            f"cannot load checkpoint {weights.checkpoint} into {name} ({what}). It must be a "
            f"state_dict of this architecture saved with torch.save (optionally under a "
            f"'state_dict' key), a .safetensors file, or an open_clip training checkpoint"
        )
    if weights.kind == "tag":
        return (
            f"cannot load the {weights.label!r} weights of {name} ({what}); if they are not on "
            f"this machine, pass a local checkpoint file or 'none' for random weights"
        )
    return f"cannot build {name} with random weights ({what})"
