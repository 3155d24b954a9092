"""Curated manifest export: one row per sample (or per sample of a subset) after the curator's
decisions, as CSV, Parquet, JSONL or an image folder, each with its provenance record.

Rows: ``label`` is the current label (after ``relabel`` decisions), ``original_label`` the
ingested one, ``decision`` the sample's review status (relabeled / kept / dropped / unsure, empty
when undecided) and ``tags`` its tags (comma-separated). Samples dropped by a decision are left
out unless ``include_dropped``. A table export re-ingests to the same ids and current labels
(``thresher ingest -w W2 manifest.csv`` reads ``id``, ``path``, ``label``, ``split`` and reports
the other columns as ignored).

``imagefolder`` writes ``OUT/[split/]label/<file>``: symbolic links to the ingested files by
default, copies with ``copy=True``. The folder is built beside ``OUT`` and renamed into place, so
a failed export leaves nothing half-written. Two files that would get the same name in one folder
are both prefixed with their sample id (``<id>_<name>``).

Every export writes :mod:`backend.storage.provenance`'s record beside it.
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from backend.storage import decisions, provenance
from backend.storage.errors import StorageError
from backend.storage.export_paths import check_output, replace_atomically
from backend.storage.subsets import subset_ids
from backend.storage.workspace import Workspace

log = logging.getLogger(__name__)

#: Table formats (a file, or the app's download button).
FORMATS = ("csv", "parquet", "jsonl")
#: What ``thresher export --what manifest --format`` writes (an image folder is a folder).
FILE_FORMATS = (*FORMATS, "imagefolder")
SAMPLE_COLUMNS = ["id", "path", "label", "split", "width", "height", "content_hash"]
MANIFEST_COLUMNS = ["id", "path", "label", "original_label", "split", "decision", "tags", "width", "height",
                    "content_hash"]
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class Written:
    """One finished export: the absolute ``path`` written, its provenance record and where that is."""

    path: Path
    provenance_path: Path
    rows: int
    record: dict[str, Any]


# --------------------------------------------------------------------------- rows
def curated_scope(ws: Workspace, subset: str | None = None) -> pd.DataFrame:
    """Every sample (or every sample of ``subset``) with its curated state, dropped ones included
    (:func:`backend.storage.decisions.curated_samples`), sorted by id."""
    rows = decisions.curated_samples(ws, SAMPLE_COLUMNS)
    if subset is not None:
        rows = rows[rows["id"].isin(set(subset_ids(ws, subset)))]
    return rows.sort_values("id", kind="stable").reset_index(drop=True)


def manifest_rows(scope: pd.DataFrame, *, include_dropped: bool = False) -> pd.DataFrame:
    """The export rows of a :func:`curated_scope`: :data:`MANIFEST_COLUMNS`, dropped samples left
    out unless ``include_dropped``."""
    rows = scope if include_dropped else scope[~scope["dropped"].to_numpy(bool)]
    return rows[MANIFEST_COLUMNS].reset_index(drop=True)


def manifest_frame(ws: Workspace, *, subset: str | None = None, include_dropped: bool = False) -> pd.DataFrame:
    """The curated export rows of the whole dataset or of ``subset`` (module docstring)."""
    return manifest_rows(curated_scope(ws, subset), include_dropped=include_dropped)


# --------------------------------------------------------------------------- tables
def to_bytes(frame: pd.DataFrame, fmt: str, record: dict[str, Any] | None = None) -> bytes:
    """Serialise ``frame`` in ``fmt``; Parquet carries ``record`` (the provenance) in its schema
    metadata under ``b"thresher.provenance"``."""
    if fmt not in FORMATS:
        raise StorageError(f"unknown table format {fmt!r}; choose one of {', '.join(FORMATS)}")
    buf = io.BytesIO()
    if fmt == "csv":
        frame.to_csv(buf, index=False)
    elif fmt == "parquet":
        table = pa.Table.from_pandas(frame, preserve_index=False)
        for k, field in enumerate(table.schema):  # an all-empty column (no decision yet) stays text
            if pa.types.is_null(field.type):
                table = table.set_column(k, field.name, table.column(k).cast(pa.string()))
        if record is not None:
            metadata = dict(table.schema.metadata or {})
            metadata[provenance.PARQUET_KEY] = provenance.to_json(record).encode()
            table = table.replace_schema_metadata(metadata)
        pq.write_table(table, buf)
    else:
        frame.to_json(buf, orient="records", lines=True, date_format="iso")
    return buf.getvalue()


def write_atomic(make_bytes: Callable[[], bytes], out: str | os.PathLike, *, example: str,
                 overwrite: bool = False) -> Path:
    """Check ``out`` (:func:`backend.storage.export_paths.check_output`: not a folder, its folder
    exists, not a workspace's own file, not a link or a device, an existing file only with
    ``overwrite``), then write ``make_bytes()`` to a temporary file renamed into place, so a failed
    export leaves no half file. ``example``: a file name the error suggests when ``out`` is a
    folder. Returns the absolute path written."""
    path = check_output(out, overwrite=overwrite, example=example)
    return replace_atomically(path, make_bytes())


def write_export(frame: pd.DataFrame, fmt: str, out: str | os.PathLike, record: dict[str, Any], *,
                 overwrite: bool = False) -> Written:
    """Write ``frame`` as ``fmt`` atomically, then its provenance ``record`` beside it (with the
    absolute path in ``record["file"]``); both paths are checked before either is written, and
    existing files are replaced only with ``overwrite``."""
    path = check_output(out, overwrite=overwrite, example=f"manifest.{fmt}")
    sidecar = check_output(provenance.sidecar_path(path, fmt), overwrite=overwrite)
    record = {**record, "file": str(path), "rows": len(frame)}
    path = replace_atomically(path, to_bytes(frame, fmt, record))  # path checked above
    provenance.write(record, sidecar, overwrite=overwrite)
    log.info("wrote %d rows to %s (provenance: %s)", len(frame), path, sidecar)
    return Written(path, sidecar, len(frame), record)


# --------------------------------------------------------------------------- image folder
def _check_folder_name(value: str, what: str, sample_id: str) -> str:
    text = str(value)
    if text in ("", ".", "..") or any(c in text for c in "/\\\0"):
        raise StorageError(f"{what} {text!r} of sample {sample_id} cannot be a folder name; an image folder needs "
                           f"{what}s without '/', '\\' and not '.' or '..': export csv, parquet or jsonl instead")
    return text


def folder_layout(frame: pd.DataFrame) -> pd.DataFrame:
    """id, source (the ingested file) and target (``[split/]label/name``, relative) of every row.

    Checked before anything is written: every sample has a file that exists, labels and splits
    are folder names, and splits are given for all rows or none."""
    no_file = frame["path"].isna() | (frame["path"].astype(str).str.strip() == "")
    if no_file.any():
        example = frame.loc[no_file, "id"].iloc[0]
        raise StorageError(f"{int(no_file.sum())} of the {len(frame)} samples have no image file (ingested as "
                           f"features only, e.g. {example}); an image folder needs files: export csv, parquet or "
                           "jsonl instead")
    missing = [(i, p) for i, p in zip(frame["id"], frame["path"], strict=True) if not Path(p).is_file()]
    if missing:
        raise StorageError(f"{len(missing)} image files are gone (e.g. {missing[0][1]} of sample {missing[0][0]}); "
                           "restore them or re-ingest before exporting an image folder")
    split = frame["split"].fillna("").astype(str)
    has_split = split != ""
    if has_split.any() and not has_split.all():
        example = frame.loc[~has_split, "id"].iloc[0]
        raise StorageError(f"{int((~has_split).sum())} of the {len(frame)} samples have no split (e.g. {example}) "
                           "while the others do; OUT/[split/]label/ needs a split for all or none: export one "
                           "split's subset, or csv / parquet / jsonl")
    folders = [
        "/".join([*([_check_folder_name(s, "split", i)] if s else []), _check_folder_name(lab, "label", i)])
        for i, s, lab in zip(frame["id"], split, frame["label"].astype(str), strict=True)
    ]
    layout = pd.DataFrame({"id": frame["id"].to_numpy(), "source": frame["path"].to_numpy(), "folder": folders})
    layout["name"] = [Path(p).name for p in layout["source"]]
    clash = layout.duplicated(["folder", "name"], keep=False)
    layout.loc[clash, "name"] = [f"{_UNSAFE_NAME.sub('_', str(i))}_{n}"
                                 for i, n in zip(layout.loc[clash, "id"], layout.loc[clash, "name"], strict=True)]
    layout["target"] = layout["folder"] + "/" + layout["name"]
    layout["renamed"] = clash.to_numpy()
    return layout[["id", "source", "target", "renamed"]]


def write_imagefolder(frame: pd.DataFrame, out: str | os.PathLike, record: dict[str, Any], *,
                      copy: bool = False) -> Written:
    """Write ``OUT/[split/]label/<file>`` for every row of ``frame`` (links, or copies with
    ``copy``) and ``OUT/provenance.json``; ``OUT`` must be new or an empty folder."""
    out = check_output(out, overwrite=False, folder=True)
    if out.exists() and any(out.iterdir()):
        raise StorageError(f"{out} exists and is not an empty folder; an image-folder export makes a new folder: "
                           "pick another --out")
    layout = folder_layout(frame)
    record = {**record, "file": str(out), "rows": len(frame), "layout": "split/label/file" if
              frame["split"].fillna("").astype(str).ne("").any() else "label/file",
              "files": "copies" if copy else "symbolic links", "renamed_with_id": int(layout["renamed"].sum())}
    building = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    building.mkdir()
    try:
        for source, target in zip(layout["source"], layout["target"], strict=True):
            path = building / target
            path.parent.mkdir(parents=True, exist_ok=True)
            if copy:
                shutil.copy2(source, path)
            else:
                path.symlink_to(Path(source).resolve())
        provenance.write(record, building / provenance.FOLDER_FILE)
        if out.exists():
            out.rmdir()  # empty, checked above
        building.rename(out)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    log.info("wrote %d files to %s", len(frame), out)
    return Written(out, provenance.sidecar_path(out, "imagefolder"), len(frame), record)


# --------------------------------------------------------------------------- the export
def curated_export(ws: Workspace, fmt: str, *, subset: str | None = None, include_dropped: bool = False,
                   extra: pd.DataFrame | None = None, **record_extra: Any) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The rows of a curated manifest export and its provenance record (not yet naming a file).

    ``extra``: more columns by ``id`` (e.g. soft labels), joined to the rows it has; ``record_extra``:
    more fields for the record."""
    last_seq = decisions.last_seq(ws)  # read first: the rows hold at least the decisions up to it
    scope = curated_scope(ws, subset)
    rows = manifest_rows(scope, include_dropped=include_dropped)
    if extra is not None:
        rows = rows.merge(extra, on="id", how="inner", validate="one_to_one")
    record = provenance.build(ws, what="manifest", fmt=fmt, out=None, rows=len(rows), subset=subset, scope=scope,
                              include_dropped=include_dropped, last_seq=last_seq, **record_extra)
    return rows, record


def export_manifest(ws: Workspace, fmt: str, out: str | os.PathLike, *, subset: str | None = None,
                    include_dropped: bool = False, copy: bool = False, extra: pd.DataFrame | None = None,
                    overwrite: bool = False, **record_extra: Any) -> Written:
    """Write the curated manifest of the dataset or of ``subset`` to ``out`` in ``fmt`` (one of
    :data:`FILE_FORMATS`), with its provenance record (module docstring; ``extra`` and
    ``record_extra`` as in :func:`curated_export`); an existing file is replaced only with
    ``overwrite`` (an image folder must be new or empty)."""
    if fmt not in FILE_FORMATS:
        raise StorageError(f"unknown export format {fmt!r}; choose one of {', '.join(FILE_FORMATS)}")
    if copy and fmt != "imagefolder":
        raise StorageError("--copy goes with --format imagefolder (it copies the image files instead of linking them)")
    rows, record = curated_export(ws, fmt, subset=subset, include_dropped=include_dropped, extra=extra,
                                  **record_extra)
    if fmt == "imagefolder":
        return write_imagefolder(rows, out, record, copy=copy)
    return write_export(rows, fmt, out, record, overwrite=overwrite)


def manifest_download(ws: Workspace, fmt: str, *, subset: str | None = None, include_dropped: bool = False) -> bytes:
    """The curated manifest as ``fmt`` bytes (the app's download button; Parquet carries the record)."""
    rows, record = curated_export(ws, fmt, subset=subset, include_dropped=include_dropped)
    return to_bytes(rows, fmt, record)
