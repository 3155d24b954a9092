"""The app's data access: the only module with ``st.cache_resource`` and ``st.cache_data``.

Handles (the :class:`Workspace` and the DuckDB :class:`QueryEngine`) are cached per workspace
folder. Query results are cached under the Lance versions of the tables they read, so a
commit by a worker or by another page changes the cache key and the next rerun reads fresh
rows; no page ever shows a stale table for longer than one rerun. Writes made by the app
(saving a subset) also clear the caches they affect.

``app/prune_data.py`` holds the Prune page's share (it follows the same rules).

Pages call the public functions here with the workspace folder as a string; the private
``_cached_*`` functions take the table versions as an extra argument, ``versions``, which is
only there to be part of the cache key (Streamlit does not hash arguments whose names start
with an underscore, so it must not start with one).
"""

from __future__ import annotations

import base64
import io
import os
import threading
from dataclasses import dataclass
from pathlib import Path

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


def table_versions(root: str, names: tuple[str, ...]) -> Versions:
    """The latest committed Lance version of each table (0 while it does not exist)."""
    ws = open_workspace(root)
    return tuple((name, ws.table_version(name)) for name in names)


def _embedding_tables(root: str) -> tuple[str, ...]:
    return tuple(embedding_table_name(key) for key in open_workspace(root).embedding_keys())


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


def overview_counts(root: str) -> OverviewCounts:
    tables = ("samples", "runs", "subsets", *_embedding_tables(root))
    return _cached_overview_counts(root, table_versions(root, tables))


@st.cache_data(show_spinner=False, max_entries=16)
def _cached_overview_counts(root: str, versions: Versions) -> OverviewCounts:
    shared = _shared_engine(root)
    with shared.lock:
        classes = queries.class_counts(shared.engine)
        splits = queries.split_counts(shared.engine)
        embeddings = queries.embedding_counts(shared.engine)
    ws = open_workspace(root)
    projection_runs = runs.list_runs(ws, "project")
    return OverviewCounts(
        samples=int(classes["n"].sum()),
        classes=len(classes),
        splits=len(splits),
        embedding_models=len(embeddings),
        vectors=int(embeddings["vectors"].sum()) if len(embeddings) else 0,
        projection_runs=int((projection_runs["status"] == "done").sum()),
        subsets=len(subsets.subset_names(ws)),
    )


def label_split_counts(root: str) -> pd.DataFrame:
    """Columns label, split, n: one row per (label, split) pair."""
    return _cached_sample_query(root, "label_by_split", table_versions(root, ("samples",)))


def split_counts(root: str) -> pd.DataFrame:
    """Columns split, n."""
    return _cached_sample_query(root, "split_counts", table_versions(root, ("samples",)))


_SAMPLE_QUERIES = {"label_by_split": queries.label_by_split, "split_counts": queries.split_counts}


@st.cache_data(show_spinner=False, max_entries=32)
def _cached_sample_query(root: str, query: str, versions: Versions) -> pd.DataFrame:
    shared = _shared_engine(root)
    with shared.lock:
        return _SAMPLE_QUERIES[query](shared.engine)


def embedding_counts(root: str) -> pd.DataFrame:
    """Columns model, dim, vectors: one row per stored embedding."""
    return _cached_embedding_counts(root, table_versions(root, _embedding_tables(root)))


@st.cache_data(show_spinner=False, max_entries=16)
def _cached_embedding_counts(root: str, versions: Versions) -> pd.DataFrame:
    shared = _shared_engine(root)
    with shared.lock:
        return queries.embedding_counts(shared.engine)


def run_list(root: str, kind: str | None) -> pd.DataFrame:
    """Runs of one kind (every kind with ``None``), newest first (``runs.list_runs``)."""
    return _cached_run_list(root, kind, table_versions(root, ("runs",)))


@st.cache_data(show_spinner=False, max_entries=32)
def _cached_run_list(root: str, kind: str | None, versions: Versions) -> pd.DataFrame:
    return runs.list_runs(open_workspace(root), kind)


def finished_runs(root: str, kind: str) -> pd.DataFrame:
    """Finished runs of one kind, newest first."""
    listed = run_list(root, kind)
    return listed[listed["status"] == "done"].reset_index(drop=True)


def projection_runs(root: str) -> pd.DataFrame:
    """Finished projection runs, newest first."""
    return finished_runs(root, "project")


def subset_list(root: str) -> pd.DataFrame:
    """Saved subsets, newest first: name, n, origin, run_id, created_at."""
    return _cached_subset_list(root, table_versions(root, ("subsets",)))


@st.cache_data(show_spinner=False, max_entries=16)
def _cached_subset_list(root: str, versions: Versions) -> pd.DataFrame:
    return subsets.list_subsets(open_workspace(root))


# --------------------------------------------------------------------------- explore
def projection_points(root: str, run_id: str) -> pd.DataFrame:
    """Columns id, x, y, label, split, path of one projection run."""
    return _cached_points(root, run_id, table_versions(root, ("projections", "samples")))


@st.cache_data(show_spinner=False, max_entries=8)
def _cached_points(root: str, run_id: str, versions: Versions) -> pd.DataFrame:
    shared = _shared_engine(root)
    with shared.lock:
        return queries.projection_points(shared.engine, run_id)


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
    forget_subsets()
    return SavedSubset(name, n, replaced=existed)


def forget_subsets() -> None:
    """Drop every cached result that depends on the subsets table."""
    _cached_subset_list.clear()
    _cached_overview_counts.clear()
    _cached_manifest.clear()
    _cached_export_bytes.clear()


# --------------------------------------------------------------------------- export
def manifest(root: str, subset: str | None) -> pd.DataFrame:
    """The export rows of the whole dataset (``subset=None``) or of one saved subset."""
    return _cached_manifest(root, subset, table_versions(root, ("samples", "subsets")))


@st.cache_data(show_spinner=False, max_entries=8)
def _cached_manifest(root: str, subset: str | None, versions: Versions) -> pd.DataFrame:
    return export.manifest_frame(open_workspace(root), subset=subset)


def export_bytes(root: str, subset: str | None, fmt: str) -> bytes:
    return _cached_export_bytes(root, subset, fmt, table_versions(root, ("samples", "subsets")))


@st.cache_data(show_spinner=False, max_entries=4)
def _cached_export_bytes(root: str, subset: str | None, fmt: str, versions: Versions) -> bytes:
    return export.to_bytes(manifest(root, subset), fmt)


def write_manifest(root: str, subset: str | None, fmt: str, out: str) -> Path:
    """Write the manifest to ``out``; raises ``StorageError`` / ``OSError`` with the reason."""
    return export.write_export(manifest(root, subset), fmt, out)


def write_soft_labels(root: str, subset: str, fmt: str, out: str) -> Path:
    """``thresher export --subset SUBSET --soft-labels`` to ``out`` in a child process (it trains
    the teacher probe: ``app.cli_jobs``); raises ``StorageError`` with the command's reason."""
    run_cli(["export", "--workspace", root, "--subset", subset, "--soft-labels", "--format", fmt, "--out", out])
    return Path(out)


# --------------------------------------------------------------------------- runs
#: Tables a run comparison reads (its cache key).
COMPARISON_TABLES = ("runs", "scores", "label_issues", "collapse", "samples")


def run_comparison(root: str, run_a: str, run_b: str) -> RunComparison:
    """``run_compare.compare_runs``; raises ``StorageError`` with the reason (different kinds,
    unfinished score run, unknown id)."""
    return _cached_run_comparison(root, run_a, run_b, table_versions(root, COMPARISON_TABLES))


@st.cache_data(show_spinner=False, max_entries=4)
def _cached_run_comparison(root: str, run_a: str, run_b: str, versions: Versions) -> RunComparison:
    return compare_runs(open_workspace(root), run_a, run_b)


def delete_run(root: str, run_id: str, *, force: bool = False) -> None:
    """Delete a run and its rows (``runs.delete_run``: a running run only with ``force``; subsets
    made from it are kept). The tables' new versions refresh every cached read."""
    runs.delete_run(open_workspace(root), run_id, force=force)


# --------------------------------------------------------------------------- scoring runs
def score_runs(root: str) -> pd.DataFrame:
    """Finished score runs (``thresher score``), newest first."""
    return finished_runs(root, "score")


def label_issues(root: str, run_id: str) -> pd.DataFrame:
    """One row per scored sample, most suspicious first: id, label, split, path,
    label_issue_score, is_label_issue, suggested_label, detectors."""
    return _cached_label_issues(root, run_id, table_versions(root, ("label_issues", "samples")))


@st.cache_data(show_spinner=False, max_entries=8)
def _cached_label_issues(root: str, run_id: str, versions: Versions) -> pd.DataFrame:
    ws = open_workspace(root)
    verdict = results.read_label_issues(ws, run_id)
    frame = ws.samples(columns=["id", "label", "split", "path"]).merge(verdict, on="id")
    frame = frame.sort_values(["label_issue_score", "id"], ascending=[False, True], kind="stable")
    return frame.reset_index(drop=True)


def sample_scores(root: str, run_id: str) -> pd.DataFrame:
    """id, label_issue ("flagged" / "not flagged"), label_issue_score, suggested_label, and one
    column per score of the run (what Explore can colour by)."""
    versions = table_versions(root, ("scores", "label_issues"))
    return _cached_sample_scores(root, run_id, versions)


@st.cache_data(show_spinner=False, max_entries=8)
def _cached_sample_scores(root: str, run_id: str, versions: Versions) -> pd.DataFrame:
    ws = open_workspace(root)
    verdict = results.read_label_issues(ws, run_id)
    verdict = verdict.assign(
        label_issue=np.where(verdict["is_label_issue"].fillna(False), "flagged", "not flagged")
    )[["id", "label_issue", "label_issue_score", "suggested_label"]]
    return verdict.merge(results.read_scores(ws, run_id), on="id", how="outer")


def collapse_samples(root: str, run_id: str) -> pd.DataFrame:
    """``score_export.collapse_samples``: a score run's per-sample collapse distances."""
    return _cached_collapse_samples(root, run_id, table_versions(root, ("scores", "samples")))


@st.cache_data(show_spinner=False, max_entries=4)
def _cached_collapse_samples(root: str, run_id: str, versions: Versions) -> pd.DataFrame:
    return score_export.collapse_samples(open_workspace(root), run_id)


def colored_points(root: str, run_id: str, score_run: str | None, color_by: str) -> pd.DataFrame:
    """:func:`projection_points`, plus column ``color_by`` of ``score_run`` when it is one of
    :func:`sample_scores`' columns (all NaN when the run lacks that score)."""
    points = projection_points(root, run_id)
    if score_run is None or color_by in points.columns:
        return points
    versions = table_versions(root, ("projections", "samples", "scores", "label_issues"))
    return _cached_colored_points(root, run_id, score_run, color_by, versions)


@st.cache_data(show_spinner=False, max_entries=4)
def _cached_colored_points(
    root: str, run_id: str, score_run: str, color_by: str, versions: Versions
) -> pd.DataFrame:
    scores = sample_scores(root, score_run)
    if color_by not in scores.columns:
        scores = scores[["id"]].assign(**{color_by: np.nan})
    return projection_points(root, run_id).merge(scores[["id", color_by]], on="id", how="left")


# --------------------------------------------------------------------------- collapse
def collapse_summary(root: str, run_id: str) -> dict:
    """``score_export.collapse_summary``; raises ``StorageError`` when the run stored none."""
    return _cached_collapse_summary(root, run_id, table_versions(root, ("collapse",)))


@st.cache_data(show_spinner=False, max_entries=8)
def _cached_collapse_summary(root: str, run_id: str, versions: Versions) -> dict:
    return score_export.collapse_summary(open_workspace(root), run_id)
