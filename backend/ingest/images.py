"""Reading image files for ingest: size, content hash and pixel statistics, with a clear reason
when a file is bad.

Each file is decoded once; the same pass hashes its bytes and computes the image-quality
statistics (:mod:`backend.pixel_stats`) the score job's health checks read. Many files are
inspected by a process pool in chunks (:func:`inspect_images`): order-preserving, and the same
results as one process, since each file's result depends on that file alone."""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import os
import re
import stat
import warnings
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from backend.pixel_stats import PIXEL_STAT_NAMES, stats_of_image

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
#: Larger images are refused from their header, before any pixel is decoded (PIL's own warning
#: threshold: about 9,459 x 9,459; one decoded RGBA image of this size is 358 MB).
MAX_PIXELS = 89_478_485
#: Files per task of the process pool: a task of small images is tens of milliseconds of work,
#: so sending paths and results costs little; many tasks per worker keep every worker busy to the end.
CHUNK_FILES = 256


@dataclass(frozen=True)
class ImageInfo:
    """Width and height as stored in the file (before any EXIF rotation: the pixels the embedder
    and the app read); ``stats``: the pixel statistics, in the order of
    :data:`backend.pixel_stats.PIXEL_STAT_NAMES`; ``note`` is a caveat for the report (an
    animated image)."""

    width: int
    height: int
    content_hash: str
    stats: tuple[float, ...] = ()
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
            stats = _pixel_stats(img)
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
    return ImageInfo(width, height, content_hash(data), stats, note)


def _pixel_stats(img: Image.Image) -> tuple[float, ...]:
    """:data:`PIXEL_STAT_NAMES` of the decoded ``img`` (shrinks it in place); NaN when a mode
    cannot be converted to numbers: the image is still usable, its quality checks are unknown."""
    try:
        stats = stats_of_image(img)
    except (OSError, ValueError):
        return (float("nan"),) * len(PIXEL_STAT_NAMES)
    return tuple(float(v) for v in stats[-len(PIXEL_STAT_NAMES) :])


def inspect_image(path: str | os.PathLike) -> ImageInfo:
    """Fully decode ``path`` once and return its size, content hash and pixel statistics, or
    raise :class:`ImageProblem`. An image above :data:`MAX_PIXELS` is refused from its header
    before any decoding."""
    with _quiet_size_warnings():
        return _inspect(Path(path))


def default_workers() -> int:
    """The CPU cores this process may run on (its affinity mask, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def inspect_images(paths: list[str], *, workers: int | None = None,
                   chunk_files: int | None = None) -> list[ImageInfo | ImageProblem]:
    """:func:`inspect_image` of each path, in order; a bad file gives its :class:`ImageProblem`.

    Algorithm
    ---------
    1. ``workers`` 1, or no more than one chunk of files: one loop in this process.
    2. Otherwise cut the paths into chunks of ``chunk_files`` and map them over a pool of
       ``workers`` processes (defaults: :data:`CHUNK_FILES`, :func:`default_workers`); ``map``
       returns the chunks in order, so the result is the serial loop's, file for file.
       Processes, not threads: the decode, hash and statistics of a small image are mostly
       Python-level work that holds the GIL. Workers are spawned, not forked (this process may
       hold Lance's threads, which a fork would copy mid-lock).
    """
    workers = default_workers() if workers is None else workers
    chunk_files = CHUNK_FILES if chunk_files is None else chunk_files
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    if chunk_files < 1:
        raise ValueError(f"chunk_files must be at least 1, got {chunk_files}")
    if workers == 1 or len(paths) <= chunk_files:
        return _inspect_chunk(paths)
    chunks = [paths[i : i + chunk_files] for i in range(0, len(paths), chunk_files)]
    found: list[ImageInfo | ImageProblem] = []
    context = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=context) as pool:
            for part in pool.map(_inspect_chunk, chunks):
                found.extend(part)
    except BrokenProcessPool as exc:
        raise RuntimeError(f"a process reading images died ({exc}), probably out of memory on a large image: "
                           "ingest again with --workers 1 (one process, less memory) to find the file") from exc
    return found


def _inspect_chunk(paths: list[str]) -> list[ImageInfo | ImageProblem]:
    """:func:`inspect_image` over ``paths`` (one task of the pool, or the whole serial loop)."""
    found: list[ImageInfo | ImageProblem] = []
    with _quiet_size_warnings():
        for path in paths:
            try:
                found.append(_inspect(Path(path)))
            except ImageProblem as exc:
                found.append(exc)
    return found


@contextlib.contextmanager
def _quiet_size_warnings() -> Iterator[None]:
    """PIL warns about images above :data:`MAX_PIXELS`; each is refused and reported anyway."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield
