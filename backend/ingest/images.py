"""Reading image files for ingest: size and content hash, with a clear reason when a file is bad."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
#: Larger images are refused from their header, before any pixel is decoded (PIL's own warning
#: threshold: about 9,459 x 9,459; one decoded RGBA image of this size is 358 MB).
MAX_PIXELS = 89_478_485


@dataclass(frozen=True)
class ImageInfo:
    """Width and height as stored in the file (before any EXIF rotation: the pixels the embedder
    and the app read); ``note`` is a caveat for the report (an animated image)."""

    width: int
    height: int
    content_hash: str
    note: str = ""


class ImageProblem(ValueError):
    """The file cannot be used as an image; the message says why."""


def sample_id_for_path(path: str | os.PathLike) -> str:
    """A stable id: 16 hex chars of blake2b over the absolute path (same file, same id on re-ingest)."""
    return sample_id_for_resolved(str(Path(path).expanduser().resolve()))


def sample_id_for_resolved(absolute: str) -> str:
    """:func:`sample_id_for_path` of a path that is already absolute with no symlink in it."""
    return hashlib.blake2b(absolute.encode(), digest_size=8).hexdigest()


def file_kind(mode: int) -> str:
    """What a stat mode that is neither a regular file nor a folder is, in words."""
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a folder" if stat.S_ISDIR(mode) else "not a plain file"


def _too_large(pixels: int, size: tuple[int, int] | None = None) -> ImageProblem:
    dims = f" ({size[0]} x {size[1]})" if size else ""
    return ImageProblem(f"image too large: {pixels:,} pixels{dims} by its header, above the limit of "
                        f"{MAX_PIXELS:,}: downscale it (or cut it into tiles) and ingest again")


def content_hash(data: bytes) -> str:
    """The stored ``content_hash`` of a file's bytes: 32 hex chars of blake2b-128."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _inspect(path: Path) -> ImageInfo:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise ImageProblem("missing file: no such file") from exc
    except OSError as exc:
        raise ImageProblem(f"unreadable file: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(mode):  # never opened: reading a FIFO would wait forever
        raise ImageProblem(f"not a regular file: {file_kind(mode)}; only image files are read")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageProblem(f"unreadable file: {exc.strerror or exc}") from exc
    if not data:
        raise ImageProblem("corrupt image: the file is empty")
    try:
        with Image.open(path) as img:
            width, height = img.size  # from the header: nothing is decoded yet
            if width * height > MAX_PIXELS:
                raise _too_large(width * height, (width, height))
            img.load()  # a full decode catches truncated files that verify() lets through
            animated = bool(getattr(img, "is_animated", False))
    except Image.DecompressionBombError as exc:  # PIL refuses twice MAX_PIXELS before we see the size
        claimed = re.search(r"\((\d+) pixels\)", str(exc))
        raise _too_large(int(claimed.group(1))) if claimed else ImageProblem(f"image too large: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise ImageProblem("corrupt image: not a format PIL can read") from exc
    except MemoryError as exc:
        raise ImageProblem("image too large: decoding it ran out of memory") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageProblem(f"corrupt image: {exc}") from exc
    note = "animated image: only its first frame is used" if animated else ""
    return ImageInfo(width, height, content_hash(data), note)


def inspect_image(path: str | os.PathLike) -> ImageInfo:
    """Fully decode ``path`` once and return its size and content hash, or raise :class:`ImageProblem`.

    An image above :data:`MAX_PIXELS` is refused from its header before any decoding."""
    with _quiet_size_warnings():
        return _inspect(Path(path))


def inspect_images(paths: list[str], *, workers: int | None = None) -> list[ImageInfo | ImageProblem]:
    """:func:`inspect_image` over many files in a thread pool (decoding releases the GIL)."""
    workers = workers or min(8, 2 * (os.cpu_count() or 1))

    def one(p: str) -> ImageInfo | ImageProblem:
        try:
            return _inspect(Path(p))
        except ImageProblem as exc:
            return exc

    with _quiet_size_warnings(), ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, paths))


@contextlib.contextmanager
def _quiet_size_warnings() -> Iterator[None]:
    """PIL warns about images above :data:`MAX_PIXELS`; each is refused and reported anyway.
    Entered once around the whole thread pool (``catch_warnings`` is not thread-safe)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield
