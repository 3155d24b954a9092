"""open_clip models as embedders: image batches through a DataLoader, text through the tokenizer.

torch and open_clip are imported here and nowhere else in Thresher's embed path; open_clip only
after :func:`backend.embed.compat.ensure_torchvision_importable` ran.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from backend.embed.base import (
    DEFAULT_BATCH_SIZE,
    EmbeddedBatch,
    Embedder,
    EmbedderError,
    check_batching,
    storage_safe,
)
from backend.embed.compat import import_open_clip
from backend.embed.device import (
    MAX_CUDA_BATCH_SIZE,
    import_torch,
    largest_fitting_batch,
    resolve_device,
    resolve_precision,
)
from backend.embed.weights import WeightsChoice, check_model_name, resolve_weights

if TYPE_CHECKING:
    from backend.embed.gpu_decode import JpegDecoder, TensorPreprocess

log = logging.getLogger(__name__)

TEXT_BATCH_SIZE = 256
_PREPROCESS_KEYS = {
    "mean": "image_mean",
    "std": "image_std",
    "interpolation": "image_interpolation",
    "resize_mode": "image_resize_mode",
}  # tag config key -> create_model_and_transforms


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
        None picks CUDA when available, else CPU.
    precision : {"auto", "fp32", "bf16", "fp16"}
        Autocast dtype of the forward passes (:func:`resolve_precision`); "auto" is bfloat16 on
        CUDA and float32 on the CPU. Vectors come back as float32 either way.
    channels_last : bool or None
        Channels-last memory format for the model and its inputs; None: on CUDA only.
    gpu_decode : bool
        Decode JPEG files on the GPU (:meth:`enable_device_decode`); without CUDA this logs that
        decoding stays on the CPU and goes on.
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
        precision: str = "auto",
        channels_last: bool | None = None,
        gpu_decode: bool = False,
    ) -> None:
        self._torch = import_torch()
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
        self.autocast_dtype = resolve_precision(precision, self.device)
        self.channels_last = self._on_cuda if channels_last is None else bool(channels_last)
        if self.channels_last:  # only the patch-embedding convolution has 4-D weights in a ViT
            self._net.to(memory_format=self._torch.channels_last)
        self._tokenizer = None
        self._jpeg_decoder: JpegDecoder | None = None
        self._tensor_preprocess: TensorPreprocess | None = None
        self.dim = self._output_dim()
        if gpu_decode:
            self.enable_device_decode()
        log.info(
            "loaded %s (%s weights) on %s, dim %d, autocast %s, channels_last %s, JPEG decode on %s",
            name, weights.kind, self.device, self.dim, self.autocast_dtype, self.channels_last,
            self.device if self.gpu_decode else "the CPU",
        )

    @property
    def preprocess(self) -> Any:
        """The model's eval transform: PIL RGB image -> float32 (3, H, W) tensor."""
        return self._preprocess

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the model's input images."""
        size = self._net.visual.preprocess_cfg.get("size", 224)
        return (size, size) if isinstance(size, int) else tuple(size)

    @property
    def gpu_decode(self) -> bool:
        """Whether JPEG files are decoded and preprocessed on the model's device."""
        return self._jpeg_decoder is not None

    def enable_device_decode(self, decoder: JpegDecoder | None = None) -> bool:
        """Decode JPEG files on the model's device from now on; False (logged) where that cannot be.

        Parameters
        ----------
        decoder : callable or None
            None: nvJPEG (``torchvision.io.decode_jpeg(device=...)``), which needs CUDA. Another
            :data:`~backend.embed.gpu_decode.JpegDecoder` is used on any device (the tests run
            this path on the CPU with :func:`~backend.embed.gpu_decode.pil_decoder`).
        """
        from backend.embed.gpu_decode import TensorPreprocess, nvjpeg_decoder, probe_decoder

        fallback = "JPEG files are decoded on the CPU with PIL in the loader workers instead"
        if decoder is None and not self._on_cuda:
            log.warning("GPU JPEG decoding needs CUDA and the model runs on %r; %s",
                        self.device, fallback)
            return False
        try:
            tensor_preprocess = TensorPreprocess(self._preprocess)
        except ValueError as exc:
            log.warning("GPU JPEG decoding is not available for %s (%s); %s", self._name, exc,
                        fallback)
            return False
        if decoder is None:
            try:
                decoder = nvjpeg_decoder(self.device)
            except ImportError as exc:
                log.warning("torchvision.io.decode_jpeg cannot be imported (%s); %s", exc, fallback)
                return False
        problem = probe_decoder(decoder)
        if problem is not None:
            log.warning("GPU JPEG decoding on %s fails on a test image (%s); %s", self.device,
                        problem, fallback)
            return False
        self._jpeg_decoder, self._tensor_preprocess = decoder, tensor_preprocess
        return True

    def default_batch_size(self) -> int:
        """Images per batch: the base class's default on the CPU; on CUDA the largest power of two
        up to :data:`MAX_CUDA_BATCH_SIZE` whose forward pass fits in memory (halving on OOM)."""
        if not self._on_cuda:
            return super().default_batch_size()

        def try_batch(n: int) -> None:
            self.encode_pixels(self._torch.zeros(n, 3, *self.image_size, device=self.device),
                               split_on_oom=False)
            self._torch.cuda.synchronize(self.device)

        return largest_fitting_batch(try_batch, MAX_CUDA_BATCH_SIZE, self._torch.OutOfMemoryError,
                                     on_oom=self._torch.cuda.empty_cache)

    def iter_batches(
        self, paths: Sequence[str], *, batch_size: int = DEFAULT_BATCH_SIZE, num_workers: int = 0
    ) -> Iterator[EmbeddedBatch]:
        """Encode ``paths`` in order; ``num_workers`` DataLoader processes decode and preprocess.

        Algorithm
        ---------
        One batch in flight ahead: batch i+1 is fetched from the loader (its workers decode while
        the device computes) and launched before batch i is copied back and yielded, so on CUDA
        the GPU has work queued while the caller stores batch i.
        """
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
            pass_jpeg_bytes=self.gpu_decode,
        )
        in_flight = None
        for loaded in loader:
            launched = self._launch(loaded)
            if in_flight is not None:
                yield self._finish(*in_flight)
            in_flight = launched
        if in_flight is not None:
            yield self._finish(*in_flight)

    def encode_pixels(self, images: Any, *, split_on_oom: bool = True) -> Any:
        """Image features of preprocessed ``images`` (N, 3, H, W), on the device, not normalised.

        Runs under ``inference_mode`` and the embedder's autocast, channels-last when set. When the
        device runs out of memory the batch is encoded in halves (``split_on_oom``).
        """
        torch = self._torch
        images = images.to(self.device, non_blocking=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        # inference_mode and autocast are entered per batch, never across a `yield`: they are
        # thread-local switches that would otherwise leak into the caller's code.
        try:
            with torch.inference_mode(), self._autocast():
                return self._net.encode_image(images)
        except torch.OutOfMemoryError:
            if not split_on_oom or len(images) < 2:
                raise
        if self._on_cuda:
            torch.cuda.empty_cache()
        half = len(images) // 2
        log.warning("out of memory on %s with %d images; encoding them in halves (a smaller "
                    "--batch-size avoids this)", self.device, len(images))
        return torch.cat([self.encode_pixels(images[:half]), self.encode_pixels(images[half:])])

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
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return self._torch.autocast(
            device_type=self._torch.device(self.device).type, dtype=self.autocast_dtype
        )

    def _launch(self, loaded: Any) -> tuple:
        """Queue one loaded batch on the device: (positions, features or None, failed, event)."""
        torch = self._torch
        failed = list(loaded.failed)
        parts: list[tuple[np.ndarray, Any]] = []
        if loaded.images is not None:
            parts.append((loaded.positions, loaded.images.to(self.device, non_blocking=True)))
        if loaded.encoded:
            from backend.embed.gpu_decode import decode_encoded, pil_decoder

            kept, decoded, bad = decode_encoded(
                self._jpeg_decoder, loaded.encoded, loaded.encoded_positions,
                fallback=pil_decoder(self.device),
            )
            failed += bad
            if decoded:
                parts.append((np.array(kept, np.int64), self._tensor_preprocess.batch(decoded)))
        failed.sort()
        if not parts:
            return np.empty(0, np.int64), None, failed, None
        positions = np.concatenate([where for where, _ in parts])
        images = parts[0][1] if len(parts) == 1 else torch.cat([batch for _, batch in parts])
        order = np.argsort(positions, kind="stable")
        if len(parts) > 1:
            images = images[torch.from_numpy(order).to(images.device)]
        features = self.encode_pixels(images).float()
        event = None
        if self._on_cuda:  # copy back asynchronously; _finish waits for it
            features = features.to("cpu", non_blocking=True)
            event = torch.cuda.Event()
            event.record()
        return positions[order], features, failed, event

    def _finish(self, positions: np.ndarray, features: Any, failed: list, event: Any) -> EmbeddedBatch:
        if features is None:
            return EmbeddedBatch(positions, np.zeros((0, self.dim), dtype=np.float32), failed)
        if event is not None:
            event.synchronize()
        return EmbeddedBatch(positions, features.cpu().numpy(), failed)

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
        dummy = self._torch.zeros(1, 3, *self.image_size)
        return int(self.encode_pixels(dummy).shape[1])


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
