"""Reading image files for ingest: size and content hash, with a clear reason when a file is bad."""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    content_hash: str


class ImageProblem(ValueError):
    """The file cannot be used as an image; the message says why."""


def sample_id_for_path(path: str | os.PathLike) -> str:
    """A stable id: 16 hex chars of blake2b over the absolute path (same file, same id on re-ingest)."""
    absolute = str(Path(path).expanduser().resolve())
    return hashlib.blake2b(absolute.encode(), digest_size=8).hexdigest()


def inspect_image(path: str | os.PathLike) -> ImageInfo:
    """Fully decode ``path`` once and return its size and content hash, or raise :class:`ImageProblem`."""
    path = Path(path)
    if not path.exists():
        raise ImageProblem("missing file: no such file")
    if not path.is_file():
        raise ImageProblem("not a file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageProblem(f"unreadable file: {exc.strerror or exc}") from exc
    if not data:
        raise ImageProblem("corrupt image: the file is empty")
    try:
        with Image.open(path) as img:
            img.load()  # a full decode catches truncated files that verify() lets through
            width, height = img.size
    except UnidentifiedImageError as exc:
        raise ImageProblem("corrupt image: not a format PIL can read") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageProblem(f"corrupt image: {exc}") from exc
    return ImageInfo(width, height, hashlib.blake2b(data, digest_size=16).hexdigest())


def inspect_images(paths: list[str], *, workers: int | None = None) -> list[ImageInfo | ImageProblem]:
    """:func:`inspect_image` over many files in a thread pool (decoding releases the GIL)."""
    workers = workers or min(8, 2 * (os.cpu_count() or 1))

    def one(p: str) -> ImageInfo | ImageProblem:
        try:
            return inspect_image(p)
        except ImageProblem as exc:
            return exc

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, paths))
