"""Manifest export: one row per sample (or per sample of a subset) to CSV, Parquet or JSONL."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from backend.storage.errors import StorageError
from backend.storage.subsets import subset_ids
from backend.storage.workspace import Workspace

log = logging.getLogger(__name__)

FORMATS = ("csv", "parquet", "jsonl")
MANIFEST_COLUMNS = ["id", "path", "label", "split", "width", "height", "content_hash"]


def manifest_frame(ws: Workspace, *, subset: str | None = None) -> pd.DataFrame:
    """The export rows: every sample, or the samples of ``subset``, sorted by id."""
    samples = ws.samples(columns=MANIFEST_COLUMNS)
    if subset is not None:
        keep = set(subset_ids(ws, subset))
        samples = samples[samples["id"].isin(keep)]
    return samples.sort_values("id", kind="stable").reset_index(drop=True)


def to_bytes(frame: pd.DataFrame, fmt: str) -> bytes:
    """Serialise ``frame`` in ``fmt`` (used for the app's download button and for files)."""
    if fmt not in FORMATS:
        raise StorageError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    buf = io.BytesIO()
    if fmt == "csv":
        frame.to_csv(buf, index=False)
    elif fmt == "parquet":
        frame.to_parquet(buf, index=False)
    else:
        frame.to_json(buf, orient="records", lines=True, date_format="iso")
    return buf.getvalue()


def write_export(frame: pd.DataFrame, fmt: str, out: str | os.PathLike) -> Path:
    """Write ``frame`` as ``fmt`` atomically (:func:`write_atomic`)."""
    out = write_atomic(lambda: to_bytes(frame, fmt), out, example=f"manifest.{fmt}")
    log.info("wrote %d rows to %s", len(frame), out)
    return out


def write_atomic(make_bytes: Callable[[], bytes], out: str | os.PathLike, *, example: str) -> Path:
    """Check ``out`` (not a folder, its folder exists), then write ``make_bytes()`` to a temporary
    file renamed into place, so a failed export leaves no half file. ``example``: a file name
    the error suggests when ``out`` is a folder."""
    out = Path(out).expanduser()
    if out.is_dir():
        raise StorageError(f"--out {out} is a folder; give a file name such as {out / example}")
    if not out.parent.exists():
        raise StorageError(f"folder {out.parent} does not exist; create it first or pick another --out")
    data = make_bytes()
    tmp = out.with_name(f".{out.name}.partial")
    tmp.write_bytes(data)
    os.replace(tmp, out)
    return out


def export_manifest(ws: Workspace, fmt: str, out: str | os.PathLike, *, subset: str | None = None) -> int:
    frame = manifest_frame(ws, subset=subset)
    write_export(frame, fmt, out)
    return len(frame)
