"""The app's data access: the only module with ``st.cache_resource`` and ``st.cache_data``.

Handles (the :class:`Workspace` and the DuckDB :class:`QueryEngine`) are cached per workspace
folder. Every query result comes from a reader made with :func:`cached_reader`, which declares
once the tables the reader reads; each call keys the cache on those tables' latest Lance
versions, so a commit by a worker, the CLI, another session or this page changes the key and
the next call reads fresh rows. Nothing is ever cleared by hand: a ``.clear()`` would empty the
cache of every browser session on the server.

``app/prune_data.py``, ``app/curation_data.py`` and ``app/overview_data.py`` hold the Prune
page's, the decisions' and the Overview's share (made with :func:`cached_reader` here, or keyed
on :func:`table_versions` the same way).
"""

from __future__ import annotations

import base64
import functools
import io
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from app.cli_jobs import run_cli
from backend.jobs.run_compare import RunComparison, compare_runs
from backend.storage import Workspace, export, queries, results, runs, score_export, subsets
from backend.storage.queries import QueryEngine
from backend.storage.schemas import embedding_table_name

Versions = tuple[tuple[str, int | None], ...]
Reader = TypeVar("Reader", bound=Callable[..., Any])
#: What a query on the shared engine returns (a frame, an Arrow table, a list).
Result = TypeVar("Result")

#: In a reader's declaration: every embedding table of the workspace (one per model).
EMBEDDINGS = "<embeddings>"


# --------------------------------------------------------------------------- handles
@st.cache_resource(show_spinner=False)
def open_workspace(root: str) -> Workspace:
    """The workspace at ``root``; raises ``StorageError`` (not cached) when it is not one."""
    return Workspace.open(root)


@dataclass
class _SharedEngine:
    """One in-memory DuckDB connection per workspace, shared by all sessions.

    A DuckDB connection is not safe to use from two threads at once, and Streamlit runs each
    browser session in its own thread, so every query takes the lock.
    """

    engine: QueryEngine
    lock: threading.Lock


@st.cache_resource(show_spinner=False)
def _shared_engine(root: str) -> _SharedEngine:
    return _SharedEngine(QueryEngine(open_workspace(root)), threading.Lock())


def _query(root: str, query: Callable[[QueryEngine], Result]) -> Result:
    shared = _shared_engine(root)
    with shared.lock:
        return query(shared.engine)


def run_query(root: str, query: Callable[[QueryEngine], pd.DataFrame]) -> pd.DataFrame:
    """``query`` on the workspace's shared DuckDB engine (under its lock), for the readers of
    ``app/*_data.py``: they count, aggregate and page in SQL instead of copying whole tables."""
    return _query(root, query)


def table_versions(root: str, names: tuple[str, ...]) -> Versions:
    """The latest committed Lance version of each table (0 while it does not exist)."""
    ws = open_workspace(root)
    return tuple((name, ws.table_version(name)) for name in names)


# --------------------------------------------------------------------------- cached readers
def cached_reader(*reads: str | Callable[..., Any], max_entries: int,
                  shared: bool = False) -> Callable[[Reader], Reader]:
    """Cache ``read(root, *args)`` under the versions of the tables it declares it reads.

    ``reads``: table names, :data:`EMBEDDINGS`, or other cached readers (their tables, for a
    reader that calls them). The decorated function keeps ``read``'s signature; its ``reads``
    attribute is the declaration and :func:`tables_read` expands it for one workspace.
    ``shared``: keep one object for every caller (``st.cache_resource``) instead of a copy per
    call (``st.cache_data`` unpickles each hit), for large read-only results such as Explore's
    arrays at a million points; the reader must return something no caller changes.
    """

    def decorate(read: Reader) -> Reader:
        def cached(root: str, versions: Versions, *args: Any, **kwargs: Any) -> Any:
            return read(root, *args, **kwargs)

        # st.cache_data tells functions apart by module, qualified name and source: the source
        # of ``cached`` is the same for every reader, so each gets its own name.
        cached.__module__, cached.__qualname__ = read.__module__, f"{read.__qualname__}.<cached>"
        cache = st.cache_resource if shared else st.cache_data
        cached_read = cache(show_spinner=False, max_entries=max_entries)(cached)

        @functools.wraps(read)
        def public(root: str, *args: Any, **kwargs: Any) -> Any:
            return cached_read(root, table_versions(root, tables_read(public, root)), *args, **kwargs)

        public.reads = reads  # type: ignore[attr-defined]
        return cast(Reader, public)

    return decorate


def tables_read(reader: Callable[..., Any], root: str) -> tuple[str, ...]:
    """The tables a :func:`cached_reader` reads in workspace ``root`` (its cache key)."""
    names: list[str] = []
    for source in reader.reads:  # type: ignore[attr-defined]
        if callable(source):
            names += tables_read(source, root)
        elif source == EMBEDDINGS:
            names += [embedding_table_name(key) for key in open_workspace(root).embedding_keys()]
        else:
            names.append(source)
    return tuple(dict.fromkeys(names))


# --------------------------------------------------------------------------- overview
@dataclass(frozen=True)
class OverviewCounts:
    samples: int
    classes: int
    splits: int
    embedding_models: int
    vectors: int
    projection_runs: int
    subsets: int


@cached_reader("samples", "runs", "subsets", EMBEDDINGS, max_entries=16)
def overview_counts(root: str) -> OverviewCounts:
    classes = _query(root, queries.class_counts)
    embeddings = _query(root, queries.embedding_counts)
    ws = open_workspace(root)
    projection_runs = runs.list_runs(ws, "project")
    return OverviewCounts(
        samples=int(classes["n"].sum()),
        classes=len(classes),
        splits=len(_query(root, queries.split_counts)),
        embedding_models=len(embeddings),
        vectors=int(embeddings["vectors"].sum()) if len(embeddings) else 0,
        projection_runs=int((projection_runs["status"] == "done").sum()),
        subsets=len(subsets.subset_names(ws)),
    )


@cached_reader("samples", max_entries=16)
def label_split_counts(root: str) -> pd.DataFrame:
    """Columns label, split, n: one row per (label, split) pair."""
    return _query(root, queries.label_by_split)


@cached_reader("samples", max_entries=16)
def split_counts(root: str) -> pd.DataFrame:
    """Columns split, n."""
    return _query(root, queries.split_counts)


@cached_reader(EMBEDDINGS, max_entries=16)
def embedding_counts(root: str) -> pd.DataFrame:
    """Columns model, dim, vectors: one row per stored embedding."""
    return _query(root, queries.embedding_counts)


@cached_reader("runs", max_entries=32)
def run_list(root: str, kind: str | None) -> pd.DataFrame:
    """Runs of one kind (every kind with ``None``), newest first (``runs.list_runs``)."""
    return runs.list_runs(open_workspace(root), kind)


def finished_runs(root: str, kind: str) -> pd.DataFrame:
    """Finished runs of one kind, newest first."""
    listed = run_list(root, kind)
    return listed[listed["status"] == "done"].reset_index(drop=True)


def projection_runs(root: str) -> pd.DataFrame:
    """Finished projection runs, newest first."""
    return finished_runs(root, "project")


# --------------------------------------------------------------------------- subsets
@cached_reader("subsets", max_entries=16)
def subset_list(root: str) -> pd.DataFrame:
    """Saved subsets, newest first: name, n, origin, run_id, created_at."""
    return subsets.list_subsets(open_workspace(root))


@dataclass(frozen=True)
class SavedSubset:
    name: str
    n: int
    replaced: bool


def save_selection(
    root: str,
    name: str,
    ids: list[str],
    *,
    run_id: str | None,
    overwrite: bool,
    origin: str = "selection",
) -> SavedSubset:
    """Save hand-selected ids as a subset; raises ``ConflictError`` / ``StorageError`` unchanged."""
    ws = open_workspace(root)
    name = subsets.check_subset_name(name)
    existed = name in subsets.subset_names(ws)
    n = subsets.save_subset(ws, name, ids, origin=origin, run_id=run_id, overwrite=overwrite)
    return SavedSubset(name, n, replaced=existed)


# --------------------------------------------------------------------------- explore
@cached_reader("projections", "samples", max_entries=8)
def projection_points(root: str, run_id: str) -> pd.DataFrame:
    """Columns id, x, y, label, split, path of one finished projection run (a running or failed
    one raises ``StorageError``: its rows are not shown, ``runs.require_done``). Like the score
    readers, whose ``results`` functions check the same, it need not declare ``runs``: only a
    done run's rows are ever cached, and a done run changes only by its deletion, which deletes
    its rows too."""
    runs.require_done(open_workspace(root), run_id)
    return _query(root, lambda engine: queries.projection_points(engine, run_id))


def thumbnail(path: str, size: int) -> np.ndarray | None:
    """An RGB thumbnail that fits in ``size`` x ``size``; ``None`` when the file cannot be read.

    Small images (the 8x8 digits) are enlarged with nearest-neighbour so their pixels stay sharp;
    large ones are reduced. Cached per file and modification time.
    """
    modified = _modified(path)
    return None if modified is None else _cached_thumbnail(path, size, modified)


def _modified(path: str) -> int | None:
    """The file's modification time in ns (the thumbnail caches' key), None if unreadable."""
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


@st.cache_data(show_spinner=False, max_entries=5000)
def _cached_thumbnail(path: str, size: int, modified: int) -> np.ndarray | None:
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            scale = size / max(img.size)
            new_size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
            resample = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.BILINEAR
            return np.asarray(img.resize(new_size, resample))
    except (OSError, Image.DecompressionBombError):
        return None


def thumbnail_uri(path: object, size: int) -> str | None:
    """The thumbnail as a ``data:image/png`` URI (for ``st.column_config.ImageColumn``)."""
    modified = _modified(path) if isinstance(path, str) and path else None
    return None if modified is None else _cached_thumbnail_uri(path, size, modified)


@st.cache_data(show_spinner=False, max_entries=5000)
def _cached_thumbnail_uri(path: str, size: int, modified: int) -> str | None:
    image = _cached_thumbnail(path, size, modified)
    if image is None:
        return None
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# --------------------------------------------------------------------------- export
@cached_reader("samples", "subsets", "decisions", max_entries=8)
def manifest(root: str, subset: str | None) -> pd.DataFrame:
    """The curated export rows (labels after decisions) of the whole dataset (``subset=None``) or
    of one saved subset, dropped samples included (``decision == "dropped"``: an export leaves
    them out unless asked)."""
    return export.manifest_frame(open_workspace(root), subset=subset, include_dropped=True)


@cached_reader(manifest, "runs", max_entries=4)
def export_bytes(root: str, subset: str | None, fmt: str, include_dropped: bool = False) -> bytes:
    """:func:`manifest` as ``fmt`` bytes (Parquet with its provenance record in the metadata)."""
    return export.manifest_download(open_workspace(root), fmt, subset=subset, include_dropped=include_dropped)


def write_manifest(root: str, subset: str | None, fmt: str, out: str, *, include_dropped: bool = False,
                   copy: bool = False, overwrite: bool = False) -> export.Written:
    """``thresher export`` of the curated manifest to ``out`` (a file, or a new folder for
    ``imagefolder``; the page has checked it is in the export folder:
    ``export_panel.write_to_path``) with its provenance record; raises ``StorageError`` /
    ``OSError`` with the reason."""
    return export.export_manifest(open_workspace(root), fmt, out, subset=subset, include_dropped=include_dropped,
                                  copy=copy, overwrite=overwrite)


def write_soft_labels(root: str, subset: str, fmt: str, out: str, *, include_dropped: bool = False,
                      overwrite: bool = False) -> Path:
    """``thresher export --subset SUBSET --soft-labels`` to ``out`` in a child process (it trains
    the teacher probe: ``app.cli_jobs``); raises ``StorageError`` with the command's reason."""
    run_cli(["export", "--workspace", root, "--subset", subset, "--soft-labels", "--format", fmt, "--out", out,
             *(["--include-dropped"] if include_dropped else []), *(["--overwrite"] if overwrite else [])])
    return Path(out)


# --------------------------------------------------------------------------- runs
@cached_reader("runs", "scores", "label_issues", "collapse", "samples", "subsets", max_entries=4)
def run_comparison(root: str, run_a: str, run_b: str) -> RunComparison:
    """``run_compare.compare_runs`` (prune runs: their kept sets, from the subsets table); raises
    ``StorageError`` with the reason (different kinds, unfinished score run, unknown id)."""
    return compare_runs(open_workspace(root), run_a, run_b)


def delete_run(root: str, run_id: str, *, force: bool = False) -> None:
    """Delete a run and its rows (``runs.delete_run``: a running run only with ``force``; subsets
    made from it are kept). The tables' new versions refresh every cached read."""
    runs.delete_run(open_workspace(root), run_id, force=force)


# --------------------------------------------------------------------------- scoring runs
def score_runs(root: str) -> pd.DataFrame:
    """Finished score runs (``thresher score``), newest first."""
    return finished_runs(root, "score")


@cached_reader("label_issues", "samples", max_entries=8)
def label_issues(root: str, run_id: str) -> pd.DataFrame:
    """One row per scored sample, most suspicious first: id, label, split, path,
    label_issue_score, is_label_issue, suggested_label, detectors."""
    ws = open_workspace(root)
    verdict = results.read_label_issues(ws, run_id)
    frame = ws.samples(columns=["id", "label", "split", "path"]).merge(verdict, on="id")
    frame = frame.sort_values(["label_issue_score", "id"], ascending=[False, True], kind="stable")
    return frame.reset_index(drop=True)


@cached_reader("scores", "label_issues", max_entries=8)
def sample_scores(root: str, run_id: str) -> pd.DataFrame:
    """id, label_issue ("flagged" / "not flagged"), label_issue_score, suggested_label, and one
    column per score of the run (what Explore can colour by)."""
    ws = open_workspace(root)
    verdict = results.read_label_issues(ws, run_id)
    verdict = verdict.assign(
        label_issue=np.where(verdict["is_label_issue"].fillna(False), "flagged", "not flagged")
    )[["id", "label_issue", "label_issue_score", "suggested_label"]]
    return verdict.merge(results.read_scores(ws, run_id), on="id", how="outer")


@cached_reader("scores", max_entries=8)
def score_names(root: str, run_id: str) -> list[str]:
    """The names of the scores ``run_id`` stored, sorted (:func:`sample_scores`' score columns)."""
    return _query(root, lambda q: queries.score_names(q, run_id))


@cached_reader("scores", "label_issues", max_entries=32)
def scores_of(root: str, run_id: str, ids: tuple[str, ...]) -> pd.DataFrame:
    """:func:`sample_scores` for the samples ``ids`` only (same columns; a row per id the run
    scored, in no particular order), looked up by id: what a sample view or a page of a gallery
    needs, without the run's whole score table (at 1M samples that read takes a minute and 6 GB)."""
    long, verdict = results.read_scores_of(open_workspace(root), run_id, ids)
    verdict = verdict.to_pandas()
    verdict = verdict.assign(
        label_issue=np.where(verdict["is_label_issue"].fillna(False).astype(bool), "flagged", "not flagged")
    )[["id", "label_issue", "label_issue_score", "suggested_label"]]
    names = score_names(root, run_id)
    long = long.to_pandas()
    wide = long.pivot(index="id", columns="name", values="value") if len(long) else pd.DataFrame(index=pd.Index([], name="id"))
    wide = wide.reindex(columns=names)
    wide.columns.name = None
    return verdict.merge(wide.reset_index(), on="id", how="outer")


@cached_reader("scores", "samples", max_entries=4)
def collapse_samples(root: str, run_id: str, limit: int | None = None) -> pd.DataFrame:
    """``score_export.collapse_samples``: a score run's per-sample collapse distances, the
    ``limit`` largest ratios first."""
    return score_export.collapse_samples(open_workspace(root), run_id, limit)


@cached_reader("scores", max_entries=4)
def collapse_ratios(root: str, run_id: str) -> np.ndarray:
    """Every sample's own / nearest-other class-mean distance ratio of a score run (empty when
    it stored none): one column read through the scores' zone maps, for the page's median,
    count and histogram."""
    ratios = results.read_score(open_workspace(root), run_id, "nc_distance_ratio").column("value")
    return ratios.to_numpy(zero_copy_only=False).astype(float)


def colored_points(root: str, run_id: str, score_run: str | None, color_by: str) -> pd.DataFrame:
    """:func:`projection_points`, plus column ``color_by`` of ``score_run`` when it is one of
    :func:`sample_scores`' columns (all NaN when the run lacks that score)."""
    points = projection_points(root, run_id)
    if score_run is None or color_by in points.columns:
        return points
    return _points_with_score(root, run_id, score_run, color_by)


@cached_reader(projection_points, sample_scores, max_entries=4)
def _points_with_score(root: str, run_id: str, score_run: str, color_by: str) -> pd.DataFrame:
    scores = sample_scores(root, score_run)
    if color_by not in scores.columns:
        scores = scores[["id"]].assign(**{color_by: np.nan})
    return projection_points(root, run_id).merge(scores[["id", color_by]], on="id", how="left")


# --------------------------------------------------------------------------- collapse
@cached_reader("collapse", max_entries=8)
def collapse_summary(root: str, run_id: str) -> dict:
    """``score_export.collapse_summary``; raises ``StorageError`` when the run stored none."""
    return score_export.collapse_summary(open_workspace(root), run_id)
