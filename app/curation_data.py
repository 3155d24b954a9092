"""The app's share of the decisions log: cached reads keyed on the ``decisions`` table version
(a decision committed by another session or the CLI shows on the next rerun), the embedding
index the neighbour panels use, and the writes the decision buttons make.

Writes return only after the decision is committed (:func:`backend.storage.decisions.decide`),
so a page acknowledges what is on disk, never what it hopes is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from app import data
from backend.jobs import review_queue
from backend.jobs.score_catalog import ScoreMeaning, score_meanings
from backend.storage import decisions, runs, score_export
from backend.storage.schemas import embedding_table_name
from backend.storage.workspace import sql_string

Versions = data.Versions


# --------------------------------------------------------------------------- reads
@data.cached_reader("decisions", max_entries=8)
def states(root: str) -> pd.DataFrame:
    """The current state of every decided sample (:func:`decisions.replay`)."""
    return decisions.decided_states(data.open_workspace(root))


@data.cached_reader(data.label_issues, states, max_entries=8)
def issues_with_decisions(root: str, run_id: str) -> pd.DataFrame:
    """Every scored sample of ``run_id`` (most suspicious first) with its decision, current label
    and tags (:func:`review_queue.with_decisions`)."""
    return review_queue.with_decisions(data.label_issues(root, run_id), states(root))


#: The verdict columns of :func:`app.data.label_issues`, in its order, plus the suggestion's probability.
_FLAGGED_SQL = (
    "SELECT s.id, s.label, s.split, s.path, l.label_issue_score, l.is_label_issue, l.suggested_label, "
    "l.detectors, p.value AS suggested_probability "
    "FROM label_issues l JOIN samples s USING (id) "
    "LEFT JOIN (SELECT id, value FROM scores WHERE run_id = $run AND name = 'suggested_probability') p USING (id) "
    "WHERE l.run_id = $run AND l.is_label_issue "
    "ORDER BY l.label_issue_score DESC NULLS LAST, s.id"
)


@data.cached_reader("label_issues", "scores", "samples", max_entries=8)
def flagged_issues(root: str, run_id: str) -> pd.DataFrame:
    """The rows of :func:`app.data.label_issues` the run flagged (most suspicious first), with
    ``suggested_probability``: selected and joined in DuckDB, so the review queue never copies
    the unflagged majority of a large run (a tenth of the rows at 10 % noise)."""
    runs.require_done(data.open_workspace(root), run_id)
    return data.run_query(root, lambda q: q.sql(_FLAGGED_SQL, {"run": run_id}))


@data.cached_reader(flagged_issues, states, max_entries=8)
def flagged_with_decisions(root: str, run_id: str) -> pd.DataFrame:
    """:func:`flagged_issues` with each sample's decision, current label and tags."""
    return review_queue.with_decisions(flagged_issues(root, run_id), states(root))


@data.cached_reader("label_issues", "samples", max_entries=8)
def issue_choices(root: str, run_id: str) -> pd.DataFrame:
    """The distinct (label, detectors) pairs of a run's verdicts: what the Review filters offer
    (``review_panel.choose_filter`` reads only these two columns' distinct values)."""
    runs.require_done(data.open_workspace(root), run_id)
    return data.run_query(root, lambda q: q.sql(
        "SELECT DISTINCT s.label, l.detectors FROM label_issues l JOIN samples s USING (id) "
        "WHERE l.run_id = ? ORDER BY 1, 2", [run_id]))


#: The Review table's rows: :func:`app.data.label_issues`'s columns, in its order.
_ISSUE_COLUMNS = ("s.id, s.label, s.split, s.path, l.label_issue_score, l.is_label_issue, "
                  "l.suggested_label, l.detectors")
_ISSUE_FROM = "FROM label_issues l JOIN samples s USING (id) "
_ISSUE_ORDER = "ORDER BY l.label_issue_score DESC NULLS LAST, s.id"


@dataclass(frozen=True)
class IssueCounts:
    """What the Review table's summary and charts count, all in DuckDB: ``scored`` and
    ``flagged`` samples of the run, ``totals`` (scored samples per given class, '(none)' for
    none), ``shown`` (the samples the filter lets through), ``by_class`` (shown per given class)
    and ``confusion`` (columns label, suggested_label, n: shown per pair, '(none)' for none)."""

    scored: int
    flagged: int
    totals: pd.Series
    shown: int
    by_class: pd.Series
    confusion: pd.DataFrame


def _issue_where(threshold: float, max_score: float, include_unflagged: bool,
                 classes: tuple[str, ...], detectors: tuple[str, ...]) -> tuple[str, dict]:
    """The WHERE clause and bound parameters that select what ``review_panel.apply_filter``
    selects: a missing score counts as 0, a missing verdict as unflagged, a missing label as
    '(none)', and ``detectors`` matches any of the comma-separated names (stripped)."""
    where = ["l.run_id = $run", "coalesce(l.label_issue_score, 0.0) BETWEEN $low AND $high"]
    params: dict = {"low": float(threshold), "high": float(max_score)}
    if not include_unflagged:
        where.append("coalesce(l.is_label_issue, false)")
    if classes:
        where.append("list_contains($classes, coalesce(CAST(s.label AS VARCHAR), '(none)'))")
        params["classes"] = [str(c) for c in classes]
    if detectors:
        where.append("list_has_any($detectors, list_transform(string_split(coalesce(l.detectors, ''), ','), "
                     "lambda x: trim(x)))")
        params["detectors"] = [str(d) for d in detectors]
    return "WHERE " + " AND ".join(where) + " ", params


@data.cached_reader("label_issues", "samples", max_entries=32)
def issue_counts(root: str, run_id: str, threshold: float = 0.0, max_score: float = 1.0,
                 include_unflagged: bool = False, classes: tuple[str, ...] = (),
                 detectors: tuple[str, ...] = ()) -> IssueCounts:
    """The counts of :class:`IssueCounts` for one Review filter (its fields as arguments)."""
    runs.require_done(data.open_workspace(root), run_id)
    where, params = _issue_where(threshold, max_score, include_unflagged, classes, detectors)
    params["run"] = run_id
    label = "coalesce(CAST(s.label AS VARCHAR), '(none)')"
    totals = data.run_query(root, lambda q: q.sql(
        f"SELECT {label} AS label, count(*) AS n, sum(CASE WHEN coalesce(l.is_label_issue, false) "
        f"THEN 1 ELSE 0 END) AS flagged {_ISSUE_FROM}WHERE l.run_id = $run GROUP BY 1", {"run": run_id}))
    confusion = data.run_query(root, lambda q: q.sql(
        f"SELECT {label} AS label, coalesce(CAST(l.suggested_label AS VARCHAR), '(none)') AS suggested_label, "
        f"count(*) AS n {_ISSUE_FROM}{where}GROUP BY 1, 2 ORDER BY 1, 2", params))
    confusion["n"] = confusion["n"].astype(int)
    by_class = confusion.groupby("label")["n"].sum()
    return IssueCounts(
        scored=int(totals["n"].sum()),
        flagged=int(totals["flagged"].fillna(0).sum()),
        totals=totals.set_index("label")["n"].astype(int).rename_axis(None),
        shown=int(confusion["n"].sum()),
        by_class=by_class.rename_axis(None),
        confusion=confusion,
    )


@data.cached_reader("label_issues", "samples", max_entries=32)
def shown_issues(root: str, run_id: str, threshold: float = 0.0, max_score: float = 1.0,
                 include_unflagged: bool = False, classes: tuple[str, ...] = (),
                 detectors: tuple[str, ...] = (), limit: int | None = None) -> pd.DataFrame:
    """The rows of :func:`app.data.label_issues` one Review filter lets through, most suspicious
    first (the first ``limit`` only, when given), selected and ordered in DuckDB."""
    runs.require_done(data.open_workspace(root), run_id)
    where, params = _issue_where(threshold, max_score, include_unflagged, classes, detectors)
    params["run"] = run_id
    tail = ""
    if limit is not None:
        tail, params["limit"] = " LIMIT $limit", int(limit)
    return data.run_query(root, lambda q: q.sql(
        f"SELECT {_ISSUE_COLUMNS} {_ISSUE_FROM}{where}{_ISSUE_ORDER}{tail}", params))


@data.cached_reader("samples", "decisions", max_entries=4)
def curated_samples(root: str) -> pd.DataFrame:
    """Every sample: id, path, split, label (current), original_label, decision, tags, dropped, pinned."""
    return decisions.curated_samples(data.open_workspace(root))


@data.cached_reader("decisions", max_entries=64)
def history(root: str, sample_id: str) -> pd.DataFrame:
    """One sample's decisions, newest first, with ``undone``."""
    return decisions.history(data.open_workspace(root), sample_id)


@data.cached_reader("samples", max_entries=256)
def sample_row(root: str, sample_id: str) -> dict | None:
    """The sample's stored row (id, path, label, split, width, height, content_hash, source)."""
    rows = data.open_workspace(root).read("samples", where=f"id = {sql_string(sample_id)}")
    return None if rows.empty else rows.iloc[0].to_dict()


@data.cached_reader("samples", max_entries=8)
def class_names(root: str) -> list[str]:
    """The classes a sample can be relabeled to."""
    from app.components.palette import natural_order

    return natural_order(decisions.known_labels(data.open_workspace(root)))


@st.cache_resource(show_spinner=False)
def meanings() -> dict[str, ScoreMeaning]:
    return score_meanings()


def meaning_of(name: str) -> ScoreMeaning | None:
    known = meanings()
    return known.get(name) or known.get(name.removesuffix("_score"))


def score_run_embedding(root: str, run_id: str) -> str | None:
    runs = data.score_runs(root)
    match = runs[runs["run_id"] == run_id]
    return None if match.empty else match.iloc[0]["embedding_key"]


def leak_source(root: str, run_id: str | None, sample_id: str) -> str | None:
    """The train sample that ``sample_id`` copies, when the score run flagged it as a split leak
    (its summary's ``health.leak_sources``, as the scores export's ``split_leak_source``)."""
    if run_id is None:
        return None
    runs = data.score_runs(root)
    match = runs[runs["run_id"] == run_id]
    return score_export.leak_sources(match.iloc[0]["summary"] if len(match) else None).get(sample_id)


# --------------------------------------------------------------------------- neighbours
@dataclass(frozen=True)
class EmbeddingIndex:
    """One embedding's unit vectors with each row's sample id, given label and path (read-only)."""

    ids: np.ndarray
    vectors: np.ndarray
    labels: np.ndarray
    paths: np.ndarray
    row_of: dict[str, int]


def embedding_index(root: str, key: str) -> EmbeddingIndex:
    name = embedding_table_name(key)
    return _cached_index(root, key, data.table_versions(root, (name, "samples")))


@st.cache_resource(show_spinner=False, max_entries=2)
def _cached_index(root: str, key: str, versions: Versions) -> EmbeddingIndex:
    ws = data.open_workspace(root)
    ids, vectors, _ = ws.load_embeddings(key)
    stored = ws.samples(columns=["id", "label", "path"]).set_index("id").reindex(ids)
    return EmbeddingIndex(ids, vectors, stored["label"].to_numpy(dtype=object),
                          stored["path"].to_numpy(dtype=object),
                          {sample_id: row for row, sample_id in enumerate(ids)})


def neighbours(root: str, key: str | None, sample_id: str, *, label: str | None = None, k: int = 6) -> pd.DataFrame:
    """The ``k`` samples nearest ``sample_id`` (cosine on embedding ``key``), among the samples
    whose given label is ``label`` when given: id, label, path, similarity. Empty when the
    sample has no vector in ``key``."""
    columns = ["id", "label", "path", "similarity"]
    if key is None:
        return pd.DataFrame(columns=columns)
    index = embedding_index(root, key)
    row = index.row_of.get(sample_id)
    if row is None:
        return pd.DataFrame(columns=columns)
    candidates = np.arange(len(index.ids)) if label is None else np.flatnonzero(index.labels == label)
    rows, similarity = review_queue.nearest(index.vectors, row, candidates, k)
    return pd.DataFrame({"id": index.ids[rows], "label": index.labels[rows], "path": index.paths[rows],
                         "similarity": similarity}, columns=columns)


# --------------------------------------------------------------------------- writes
def decide(root: str, action: str, ids: list[str], *, source: str, score_run: str | None = None,
           to: str | None = None, tag: str | None = None, reason: str = "",
           decision_ids: list[str] | None = None,
           expected: dict[str, tuple[str | None, str | None]] | None = None) -> decisions.DecisionResult:
    """Commit one decision for ``ids`` (raises ``StorageError`` with the reason; ``ConflictError``
    when a sample's decision or label is no longer the ``expected`` one the page showed)."""
    return decisions.decide(data.open_workspace(root), action, ids, to=to, tag=tag, reason=reason, source=source,
                            score_run=score_run, decision_ids=decision_ids, expected=expected)


def undo(root: str, decision_id: str | None, *, source: str) -> pd.Series:
    """Undo ``decision_id`` (or this author's latest decision); returns the entry undone."""
    ws = data.open_workspace(root)
    if decision_id is None:
        return decisions.undo(ws, None, source=source, by_author=decisions.author_name())
    return decisions.undo(ws, decision_id, source=source)


def history_entry(root: str, decision_id: str) -> pd.Series | None:
    """The decisions log's entry ``decision_id``; None when there is none."""
    log = decisions.read_log(data.open_workspace(root))
    match = log[log["decision_id"] == decision_id]
    return None if match.empty else match.iloc[0]


def latest_own_decision(root: str) -> pd.Series | None:
    """This author's latest decision still in effect (what Undo reverses when this session made
    none); None without one."""
    ws = data.open_workspace(root)
    return decisions.latest_in_effect(decisions.read_log(ws), by_author=decisions.author_name())


def accept_suggestions(root: str, run_id: str, ids: list[str]) -> decisions.DecisionResult:
    """Relabel ``ids`` (flagged by ``run_id``, not yet decided) to their suggested labels (bulk)."""
    return decisions.accept_suggestions(data.open_workspace(root), run_id, ids=ids)


# --------------------------------------------------------------------------- duplicates
def duplicate_groups(root: str, key: str | None, threshold: float | None) -> tuple[pd.DataFrame, float]:
    """``duplicates_job.duplicate_groups`` (exact copies and near duplicates; ``threshold`` None:
    chosen on the data) and the threshold used, cached on the samples' and embedding's versions."""
    tables = ("samples",) + ((embedding_table_name(key),) if key else ())
    return _cached_duplicates(root, key, threshold, data.table_versions(root, tables))


@st.cache_data(show_spinner="Finding duplicates…", max_entries=4)
def _cached_duplicates(root: str, key: str | None, threshold: float | None,
                       versions: Versions) -> tuple[pd.DataFrame, float]:
    from backend.jobs.duplicates_job import duplicate_groups as groups

    return groups(data.open_workspace(root), embedding_key=key, threshold=threshold)
