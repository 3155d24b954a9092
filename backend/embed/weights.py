"""What ``pretrained`` means for an open_clip model: random weights, a local file, or a tag.

Thresher never downloads weights unless asked to (``allow_download=True`` or the environment
variable ``THRESHER_ALLOW_DOWNLOADS=1``): a pretrained tag such as ``"openai"`` is looked up in
the caches open_clip itself fills (the Hugging Face hub cache and ``~/.cache/clip``), and a tag
that is not there is an :class:`~backend.embed.base.EmbedderError` that says how to get the
weights onto the machine.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from backend.embed.base import EmbedderError, storage_safe

log = logging.getLogger(__name__)

ALLOW_DOWNLOADS_ENV = "THRESHER_ALLOW_DOWNLOADS"
RANDOM_WEIGHTS = {"", "none", "random"}
_HF_WEIGHTS_NAME = "open_clip_pytorch_model.bin"  # open_clip.constants.HF_WEIGHTS_NAME
_HF_SAFE_WEIGHTS_NAME = "open_clip_model.safetensors"  # open_clip.constants.HF_SAFE_WEIGHTS_NAME
_URL_CACHE = Path("~/.cache/clip")  # open_clip.pretrained.download_pretrained_from_url's default
_digests: dict[tuple[str, int, int], str] = {}


@dataclass(frozen=True)
class WeightsChoice:
    """The resolved meaning of ``pretrained``.

    Attributes
    ----------
    kind : {"random", "file", "tag"}
    label : str
        The part of the embedder key that names the weights: ``"random"``, the tag, or
        ``"ckpt-<8 hex digits of the file's content hash>"``.
    checkpoint : str or None
        Local file to load; None for random weights or a tag that open_clip may download.
    tag_config : dict
        open_clip's pretrained config of a tag (preprocessing, ``quick_gelu``); empty otherwise.
    """

    kind: Literal["random", "file", "tag"]
    label: str
    checkpoint: str | None = None
    tag_config: dict[str, Any] = field(default_factory=dict)


def downloads_allowed(allow_download: bool | None = None) -> bool:
    """``allow_download`` if given, else whether ``THRESHER_ALLOW_DOWNLOADS`` is 1/true/yes.

    ``HF_HUB_OFFLINE=1`` always wins and forbids downloads.
    """
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes"}:
        return False
    if allow_download is not None:
        return bool(allow_download)
    return os.environ.get(ALLOW_DOWNLOADS_ENV, "").strip().lower() in {"1", "true", "yes"}


def check_model_name(open_clip: Any, model: str) -> str:
    """The open_clip name for ``model`` (``/`` becomes ``-``), or EmbedderError listing names."""
    if model.startswith(("hf-hub:", "local-dir:")):
        return model
    name = model.replace("/", "-")
    if open_clip.get_model_config(name) is not None:
        return name
    names = open_clip.list_models()
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
    common = [n for n in ("ViT-B-32", "ViT-B-16", "ViT-L-14", "ViT-S-32", "RN50") if n in names]
    raise EmbedderError(
        f"unknown model {model!r}. "
        + (f"Did you mean {', '.join(close)}? " if close else "")
        + f"Common ones: {', '.join(common)}; 'pixels' or 'pixels-<size>' needs no model. "
        f"All {len(names)} names: python -c 'import open_clip; print(open_clip.list_models())'"
    )


def resolve_weights(
    open_clip: Any, model: str, pretrained: str | os.PathLike | None, *, allow_download: bool | None
) -> WeightsChoice:
    """Decide what ``pretrained`` means for ``model`` (a checked open_clip name).

    Order as in open_clip: nothing / ``"none"`` / ``"random"`` means random weights; then a known
    tag of the model; then an existing file.

    Raises
    ------
    EmbedderError
        A tag whose weights are not cached while downloads are off, a checkpoint path that does
        not exist, or a value that is neither.
    """
    if pretrained is None or str(pretrained).strip().lower() in RANDOM_WEIGHTS:
        return WeightsChoice("random", "random")
    given = str(pretrained).strip()
    if model.startswith("hf-hub:"):
        raise EmbedderError(f"{model!r} names its own weights; leave pretrained empty")
    tag_config = dict(open_clip.get_pretrained_cfg(model, given) or {})
    if tag_config:
        return _tag_choice(model, given, tag_config, allow_download)
    path = Path(given).expanduser()
    if path.is_file():
        return WeightsChoice("file", f"ckpt-{checkpoint_digest(path)}", str(path.resolve()))
    tags = open_clip.list_pretrained_tags_by_model(model)
    if path.suffix or os.sep in given:
        raise EmbedderError(f"checkpoint file not found: {given!r}")
    raise EmbedderError(
        f"{given!r} is neither a pretrained tag of {model} nor an existing checkpoint file. "
        + (f"Tags for {model}: {', '.join(tags)}. " if tags else f"{model} has no known tags. ")
        + "Use 'none' for random weights."
    )


def checkpoint_digest(path: str | os.PathLike) -> str:
    """8 hex digits of a blake2b hash of the file's content, memoised per (path, size, mtime).

    The content, not the path, so that the same weights keep their key when the file moves and a
    file overwritten in place gets a new key.
    """
    path = Path(path).resolve()
    stat = path.stat()
    memo_key = (str(path), stat.st_size, stat.st_mtime_ns)
    if memo_key not in _digests:
        digest = hashlib.blake2b(digest_size=4)
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 23):
                digest.update(chunk)
        _digests[memo_key] = digest.hexdigest()
    return _digests[memo_key]


def cached_tag_file(tag_config: dict[str, Any]) -> str | None:
    """Where open_clip would find a tag's weights without downloading, if they are there."""
    if tag_config.get("file") and os.path.isfile(tag_config["file"]):
        return tag_config["file"]
    hub = tag_config.get("hf_hub", "")
    if hub:
        found = _hf_cached_file(hub)
        if found is not None:
            return found
    url = tag_config.get("url", "")
    if url:
        target = _URL_CACHE.expanduser() / os.path.basename(url)
        if target.is_file():
            return str(target)
    return None


def _tag_choice(
    model: str, tag: str, tag_config: dict[str, Any], allow_download: bool | None
) -> WeightsChoice:
    label = storage_safe(tag.lower().replace("-", "_"))
    cached = cached_tag_file(tag_config)
    if cached is not None:
        log.info("using cached weights for %s/%s: %s", model, tag, cached)
        return WeightsChoice("tag", label, cached, tag_config)
    if downloads_allowed(allow_download):
        log.info("weights for %s/%s are not cached; open_clip will download them", model, tag)
        return WeightsChoice("tag", label, None, tag_config)
    raise EmbedderError(
        f"the weights for {model} pretrained={tag!r} are not in the local cache (Hugging Face hub "
        f"cache or ~/.cache/clip) and downloads are off. Either download them once where there is "
        f'internet (python -c "import open_clip; open_clip.create_model_and_transforms('
        f"'{model}', pretrained='{tag}')\") and copy the cache here, or allow downloads with "
        f"{ALLOW_DOWNLOADS_ENV}=1, or pass a local checkpoint file as pretrained, or use "
        f"pretrained 'none' for random weights (or the 'pixels' embedder)."
    )


def _hf_cached_file(hub: str) -> str | None:
    """The cached file for an open_clip ``hf_hub`` entry (``"org/repo/"`` or ``"org/repo/file"``)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # open_clip then uses the tag's url, which the caller checks
        return None
    repo_id, filename = os.path.split(hub)
    filename = filename or _HF_WEIGHTS_NAME
    for name in (*_safe_alternatives(filename), filename):
        found = try_to_load_from_cache(repo_id, name)
        if isinstance(found, str) and os.path.isfile(found):
            return found
    return None


def _safe_alternatives(filename: str) -> list[str]:
    """The safetensors names open_clip tries before ``filename`` on the Hugging Face hub."""
    if filename == _HF_WEIGHTS_NAME:
        return [_HF_SAFE_WEIGHTS_NAME]
    if filename.endswith((".bin", ".pth")):
        return [filename[:-4] + ".safetensors"]
    return []
