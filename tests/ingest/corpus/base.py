"""The corpus's vocabulary: a :class:`Case` and the :class:`Expect` lines of its report, the
writers that make broken files at test time, and the checks several cases share."""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from backend.storage import Workspace


@dataclass(frozen=True)
class Expect:
    """One line the report must hold: the file (``path`` fragment) or manifest ``row``, a
    fragment of the reason (several: all of them), and the action."""

    reason: str | tuple[str, ...]
    path: str | None = None
    row: int | None = None
    action: str = "skipped"


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # folder | manifest | embeddings | logits
    build: Callable[[Path], Path]  # writes the inputs under the tmp folder, returns the source
    reported: tuple[Expect, ...] = ()
    kept: tuple[str, ...] = ()  # file names (image sources) or ids (embeddings, logits) that must be stored
    n_kept: int | None = None  # samples stored by this ingest (default: len(kept))
    error: str | None = None  # the source is refused as a whole with this message fragment
    prepare: Callable[[Workspace, Path], None] | None = None  # workspace state before the ingest
    check: Callable[[Workspace, Path], None] | None = None  # further assertions after it
    allow_outside_root: bool = False
    embedding_key: str | None = None  # embeddings: the key to store them under (default: from the file name)


# ---------------------------------------------------------------------- writers


def png(path: Path, value: int = 0, *, size: tuple[int, int] = (6, 5), mode: str = "L") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((size[1], size[0]), value, dtype=np.uint8)
    pixels[0, 0] = 255 - value
    Image.fromarray(pixels, mode="L").convert(mode).save(path)
    return path


def jpeg(path: Path, *, mode: str = "RGB", size: tuple[int, int] = (16, 12), exif_orientation: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new(mode, size, (10, 200, 30, 0)[: len(mode)] if mode != "L" else 90)
    if exif_orientation is None:
        img.save(path, "JPEG")
    else:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        img.save(path, "JPEG", exif=exif)
    return path


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG signature and an IHDR chunk claiming ``width`` x ``height`` RGB pixels, no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.parent.mkdir(parents=True, exist_ok=True)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def good_folder(tmp: Path) -> Path:
    """root/cat/good_cat{1,2}.png and root/dog/good_dog{1,2}.png."""
    root = tmp / "images"
    for k, label in enumerate(("cat", "dog")):
        for i in (1, 2):
            png(root / label / f"good_{label}{i}.png", 40 * k + 10 * i)
    return root


GOOD = ("good_cat1.png", "good_cat2.png", "good_dog1.png", "good_dog2.png")


def folder_case(name: str, add: Callable[[Path, Path], None], reported: tuple[Expect, ...] = (),
                kept: tuple[str, ...] = (), **kwargs) -> Case:
    """A case over :func:`good_folder` plus what ``add(root, tmp)`` writes."""

    def build(tmp: Path) -> Path:
        root = good_folder(tmp)
        add(root, tmp)
        return root

    return Case(name, "folder", build, reported, GOOD + kept, **kwargs)


def manifest_case(name: str, rows: str, reported: tuple[Expect, ...] = (), kept: tuple[str, ...] = (),
                  extra: Callable[[Path], None] | None = None, **kwargs) -> Case:
    """A CSV manifest ``tmp/data/m.csv`` over the files of :func:`good_folder` (moved to
    ``tmp/data/images``); ``rows`` are appended after the four good rows."""

    def build(tmp: Path) -> Path:
        data = tmp / "data"
        good_folder(data)
        if extra is not None:
            extra(tmp)
        good = "".join(f"images/{n.split('_')[1][:3]}/{n},{n.split('_')[1][:3]}\n" for n in GOOD)
        manifest = data / "m.csv"
        manifest.write_text("path,label\n" + good + rows, encoding="utf-8")
        return manifest

    return Case(name, "manifest", build, reported, GOOD + kept, **kwargs)


def embeddings_case(name: str, vectors: list, reported: tuple[Expect, ...] = (), kept: tuple[str, ...] | None = None,
                    labels: list | None = None, ids: list | None = None, extra_columns: dict | None = None,
                    arrow_type: pa.DataType | None = None, **kwargs) -> Case:
    """A Parquet embeddings file with ids e0, e1, ... (labels alternate a / b)."""
    n = len(vectors)
    ids = ids or [f"e{i}" for i in range(n)]

    def build(tmp: Path) -> Path:
        columns = {"id": pa.array(ids, pa.string()),
                   "label": pa.array(labels or ["a" if i % 2 == 0 else "b" for i in range(n)], pa.string()),
                   "embedding": pa.array(vectors, arrow_type or pa.list_(pa.float32()))}
        for col, values in (extra_columns or {}).items():
            columns[col] = pa.array(values)
        path = tmp / "feats" / "f.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(columns), path)
        return path

    return Case(name, "embeddings", build, reported, tuple(ids) if kept is None else kept, **kwargs)


def vectors(n: int, dim: int, seed: int = 0) -> list[list[float]]:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32).tolist()


def symlink(link: Path, target: Path | str) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, link)


def bytes_name(folder: Path, name: bytes) -> bytes:
    return os.fsencode(folder) + b"/" + name


# ---------------------------------------------------------------------- checks used by several cases


def stored(ws: Workspace) -> pd.DataFrame:
    return ws.samples(columns=["id", "path", "label", "split", "width", "height", "content_hash"])


def size_of(name: str, width: int, height: int) -> Callable[[Workspace, Path], None]:
    def check(ws: Workspace, tmp: Path) -> None:
        rows = stored(ws)
        row = rows[rows["path"].str.endswith(name)].iloc[0]
        assert (row["width"], row["height"]) == (width, height), (row["width"], row["height"])

    return check


def labels_are(expected: set[str]) -> Callable[[Workspace, Path], None]:
    def check(ws: Workspace, tmp: Path) -> None:
        assert set(stored(ws)["label"]) == expected, set(stored(ws)["label"])

    return check
