"""What every reader produces: candidate samples, then checked and turned into ``samples`` rows (dicts)."""

from __future__ import annotations

import errno
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backend.ingest.images import ImageInfo, ImageProblem, inspect_images
from backend.ingest.report import IngestReport
from backend.pixel_stats import PIXEL_STAT_NAMES

SPLIT_SYNONYMS = {"train": "train", "training": "train", "val": "val", "valid": "val",
                  "validation": "val", "dev": "val", "test": "test", "testing": "test"}


def normalise_split(value: str | None) -> str:
    """``Validation`` -> ``val``; unknown names are kept as given (lower-cased); empty stays empty."""
    text = (value or "").strip().lower()
    return SPLIT_SYNONYMS.get(text, text)


def resolve_inside(raw_path: str, base: Path, *, allow_outside_root: bool, what: str) -> Path:
    """``raw_path`` (relative to ``base``) resolved, symlinks included; a :class:`ValueError`
    saying why when it cannot be resolved or, unless ``allow_outside_root``, leaves ``base``."""
    try:
        given = Path(raw_path).expanduser()
    except RuntimeError as exc:  # "~name" of a user this system does not know
        raise ValueError(f"unknown home folder in the path {raw_path!r}: write the full path") from exc
    try:
        resolved = (given if given.is_absolute() else base / given).resolve()
    except RuntimeError as exc:  # Python 3.11's Path.resolve on a loop
        raise ValueError("symlink loop: the path never reaches a file") from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ValueError("symlink loop: the path never reaches a file") from exc
        raise ValueError(f"unreadable path: {exc.strerror or exc}") from exc
    if not allow_outside_root and not resolved.is_relative_to(base):
        raise ValueError(f"path outside {what}: {raw_path!r} is {resolved}; move the file under {base}, "
                         "or pass --allow-outside-root to read files outside it")
    return resolved


@dataclass
class Candidate:
    id: str
    path: str | None
    label: str
    split: str
    row: int | None = None  # manifest row, for the report


def check_images(candidates: list[Candidate], *, source: str, report: IngestReport, ingested_at,
                 workers: int | None = None) -> tuple[list[dict], np.ndarray]:
    """Decode each candidate's image (in ``workers`` processes, :func:`inspect_images`); bad files
    go to the report, good ones become sample rows. Returns (rows, their pixel statistics
    (len(rows), len(PIXEL_STAT_NAMES)) float64, row for row)."""
    infos = inspect_images([c.path for c in candidates], workers=workers)
    rows = []
    stats = []
    for cand, info in zip(candidates, infos, strict=True):
        if isinstance(info, ImageProblem):
            report.add(source, str(info), row=cand.row, path=cand.path or "")
            continue
        assert isinstance(info, ImageInfo)
        if info.note:
            report.add(source, info.note, row=cand.row, path=cand.path or "", action="kept")
        rows.append(_row(cand, source, ingested_at, info.width, info.height, info.content_hash))
        stats.append(info.stats)
    return rows, np.array(stats, dtype=np.float64).reshape(len(rows), len(PIXEL_STAT_NAMES))


def _row(cand: Candidate, source: str, ingested_at, width, height, content_hash) -> dict:
    return {"id": cand.id, "path": cand.path, "label": cand.label, "split": cand.split,
            "width": width, "height": height, "content_hash": content_hash,
            "source": source, "ingested_at": ingested_at}


def feature_only_rows(candidates: list[Candidate], *, source: str, ingested_at) -> list[dict]:
    """Rows for samples that arrive as precomputed features (their image may not exist here)."""
    return [_row(c, source, ingested_at, None, None, None) for c in candidates]
