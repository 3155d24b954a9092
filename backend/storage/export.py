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


@dataclass(frozen=True)
class ManifestPreview:
    """What the Export page shows before anything is written, counted without building the
    manifest: ``rows`` the export would write, ``relabeled`` of them, ``dropped`` in scope (left
    out or included), and ``head``, the first rows by id (:data:`MANIFEST_COLUMNS`)."""

    rows: int
    relabeled: int
    dropped: int
    head: pd.DataFrame


def _states_table(states: pd.DataFrame) -> pa.Table:
    state = states[["id", "current_label", "decision", "tags"]]
    return pa.Table.from_pandas(state, schema=pa.schema([(c, pa.string()) for c in state.columns]),
                                preserve_index=False)


#: The curated columns in :data:`MANIFEST_COLUMNS` order, from ``samples s`` and ``states d``.
_MANIFEST_SELECT = ("SELECT s.id, s.path, coalesce(d.current_label, s.label) AS label, s.label AS original_label, "
                    "s.split, d.decision, coalesce(d.tags, '') AS tags, s.width, s.height, s.content_hash")
#: Rows of a streamed export per batch.
STREAM_ROWS = 100_000


def _curated_connection(ws: Workspace, subset: str | None, states: pa.Table):
    """A DuckDB connection with ``samples``, ``states`` and (for a subset) ``scope`` registered,
    and the FROM clause of the curated rows in scope."""
    import duckdb

    con = duckdb.connect(":memory:")
    con.register("samples", ws.dataset("samples"))
    con.register("states", states)
    scope = ""
    if subset is not None:
        con.register("scope", pa.table({"id": pa.array(sorted(set(subset_ids(ws, subset))), pa.string())}))
        scope = "JOIN scope USING (id)"
    return con, f"FROM samples s {scope} LEFT JOIN states d USING (id)"


def manifest_preview(ws: Workspace, *, subset: str | None = None, include_dropped: bool = False,
                     limit: int = 20) -> ManifestPreview:
    """:class:`ManifestPreview` of :func:`manifest_frame`'s rows: counted and paged in DuckDB over
    the samples table (the decisions' state and a subset's ids joined in), so the page reads
    ``limit`` rows, not the dataset. Same rows, order and values as :func:`manifest_frame`."""
    con, source = _curated_connection(ws, subset, _states_table(decisions.decided_states(ws)))
    try:
        rows = source + ("" if include_dropped else " WHERE d.decision IS DISTINCT FROM 'dropped'")
        counted = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE d.decision = 'dropped'), count(*) FILTER (WHERE "
            f"coalesce(d.current_label, s.label) IS DISTINCT FROM s.label) {rows}").fetchall()[0]
        n_dropped = int(counted[1]) if include_dropped else int(con.execute(
            f"SELECT count(*) {source} WHERE d.decision = 'dropped'").fetchall()[0][0])
        head = con.sql(f"{_MANIFEST_SELECT} {rows} ORDER BY s.id LIMIT ?",
                       params=[int(limit)]).to_arrow_table().to_pandas()
    finally:
        con.close()
    head["decision"] = head["decision"].astype(object).where(head["decision"].notna(), None)
    return ManifestPreview(int(counted[0]), int(counted[2]), n_dropped, head[MANIFEST_COLUMNS])


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


def _replace_streamed(path: Path, write: Callable[[Any], None]) -> Path:
    """:func:`~backend.storage.export_paths.replace_atomically` for a file written piece by piece:
    ``write(handle)`` fills a new temporary file beside ``path``, which is then renamed onto it."""
    tmp = path.with_name(f".{path.name}.partial")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _write_batches(batches, fmt: str, handle, record: dict[str, Any], float_columns: set[str]) -> None:
    """Write pandas ``batches`` of the manifest to ``handle`` as :func:`to_bytes` writes the whole
    frame: the same text for CSV and JSONL, the same schema and values for Parquet (a row group per
    batch). ``float_columns``: integer columns with a null somewhere in the export, which pandas
    holds as floats in the whole frame, so every batch writes them as floats too."""
    writer = None
    first = True
    try:
        for frame in batches:
            for column in float_columns:
                frame[column] = frame[column].astype("float64")
            if fmt == "csv":
                handle.write(frame.to_csv(index=False, header=first).encode())
            elif fmt == "jsonl":
                if len(frame):
                    handle.write(frame.to_json(orient="records", lines=True, date_format="iso").encode())
            else:
                table = pa.Table.from_pandas(frame, preserve_index=False)
                if writer is None:
                    fields = [pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else f for f in table.schema]
                    metadata = dict(table.schema.metadata or {})
                    metadata[provenance.PARQUET_KEY] = provenance.to_json(record).encode()
                    writer = pq.ParquetWriter(handle, pa.schema(fields, metadata=metadata))
                writer.write_table(table.cast(writer.schema))
            first = False
    finally:
        if writer is not None:
            writer.close()


def _stream_manifest(ws: Workspace, fmt: str, out: str | os.PathLike, *, subset: str | None,
                     include_dropped: bool, overwrite: bool, record_extra: dict[str, Any]) -> Written:
    """:func:`export_manifest` of a table format without building the manifest: DuckDB sorts the
    curated rows by id and hands them over :data:`STREAM_ROWS` at a time, each batch written as it
    comes. The provenance record counts the decided samples in scope (the only ones its
    decision counts see), so it is the record :func:`curated_export` makes."""
    path = check_output(out, overwrite=overwrite, example=f"manifest.{fmt}")
    sidecar = check_output(provenance.sidecar_path(path, fmt), overwrite=overwrite)
    last_seq = decisions.last_seq(ws)  # read first: the rows hold at least the decisions up to it
    states = decisions.decided_states(ws)
    con, source = _curated_connection(ws, subset, _states_table(states))
    try:
        decided_ids = pa.table({"id": pa.array(states["id"].astype(str).tolist(), pa.string())})
        con.register("decided", decided_ids)
        scope = con.sql(f"SELECT s.id, s.label AS original_label {source} WHERE s.id IN (SELECT id FROM decided)"
                        ).to_arrow_table().to_pandas().merge(states, on="id", how="left")
        scope["label"] = scope["current_label"].where(scope["current_label"].notna(), scope["original_label"])
        scope["decision"] = scope["decision"].astype(object).where(scope["decision"].notna(), None)
        scope["tags"] = scope["tags"].fillna("")
        scope["dropped"], scope["pinned"] = scope["decision"].eq("dropped"), scope["decision"].eq("kept")
        scope["n_decisions"] = scope["n_decisions"].fillna(0).astype(int)
        rows = source + ("" if include_dropped else " WHERE d.decision IS DISTINCT FROM 'dropped'")
        n_rows = int(con.sql(f"SELECT count(*) {rows}").fetchall()[0][0])
        nulls = con.sql(f"SELECT count(*) - count(s.width), count(*) - count(s.height) {rows}").fetchall()[0]
        float_columns = {name for name, n in zip(("width", "height"), nulls, strict=True) if n}
        record = provenance.build(ws, what="manifest", fmt=fmt, out=None, rows=n_rows, subset=subset, scope=scope,
                                  include_dropped=include_dropped, last_seq=last_seq, **record_extra)
        record = {**record, "file": str(path), "rows": n_rows}
        reader = con.sql(f"{_MANIFEST_SELECT} {rows} ORDER BY s.id").to_arrow_reader(STREAM_ROWS)

        def batches():
            for batch in reader:
                frame = batch.to_pandas()
                frame["decision"] = frame["decision"].astype(object).where(frame["decision"].notna(), None)
                # the dtypes curated_samples gives them (the label as Python objects, the tags as the
                # decisions' state holds them), so that Parquet gets the same column types
                frame["label"], frame["tags"] = frame["label"].astype(object), frame["tags"].astype(states["tags"].dtype)
                yield frame

        path = _replace_streamed(path, lambda handle: _write_batches(batches(), fmt, handle, record, float_columns))
    finally:
        con.close()
    provenance.write(record, sidecar, overwrite=overwrite)
    log.info("wrote %d rows to %s in batches of %d (provenance: %s)", n_rows, path, STREAM_ROWS, sidecar)
    return Written(path, sidecar, n_rows, record)


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
    if fmt in FORMATS and extra is None:
        return _stream_manifest(ws, fmt, out, subset=subset, include_dropped=include_dropped, overwrite=overwrite,
                                record_extra=record_extra)
    rows, record = curated_export(ws, fmt, subset=subset, include_dropped=include_dropped, extra=extra,
                                  **record_extra)
    if fmt == "imagefolder":
        return write_imagefolder(rows, out, record, copy=copy)
    return write_export(rows, fmt, out, record, overwrite=overwrite)


def manifest_download(ws: Workspace, fmt: str, *, subset: str | None = None, include_dropped: bool = False) -> bytes:
    """The curated manifest as ``fmt`` bytes (the app's download button; Parquet carries the record)."""
    rows, record = curated_export(ws, fmt, subset=subset, include_dropped=include_dropped)
    return to_bytes(rows, fmt, record)
