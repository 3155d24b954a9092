"""The Explore page's reads: the map's points with what colours them (a score, the decision, a
tag) and the rows of a selection's gallery. Cached under the table versions they read, like
:mod:`app.data`, so a decision committed anywhere recolours the map on the next rerun."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from app import curation_data, data, map_data
from app.components.scatter import TAG_PREFIX, TAGGED
from backend.jobs.health_stage import FLAG_COLUMNS

Versions = data.Versions
#: What the ``decision`` colouring calls a sample without a decision.
NO_DECISION = map_data.NO_DECISION


def tag_names(root: str) -> list[str]:
    """Every tag some sample carries now, sorted."""
    tags = curation_data.states(root)["tags"].dropna()
    return sorted({tag for text in tags for tag in str(text).split(",") if tag})


def map_points(root: str, run_id: str, score_run: str | None, color_by: str) -> pd.DataFrame:
    """:func:`data.colored_points`, where ``color_by`` may also be ``decision`` (none / kept /
    relabeled / dropped / unsure), ``current_label`` (the label after relabels), ``tag:<name>``
    (tagged / not tagged) or a health flag (flagged / not flagged / (none), from its stored 0/1)."""
    if color_by in FLAG_COLUMNS:
        points = data.colored_points(root, run_id, score_run, color_by)
        values = points[color_by].astype(float)
        named = np.where(values.isna(), map_data.NO_VALUE, np.where(values > 0, map_data.FLAGGED, map_data.NOT_FLAGGED))
        return points.assign(**{color_by: named})
    if color_by not in ("decision", map_data.CURRENT_LABEL) and not color_by.startswith(TAG_PREFIX):
        return data.colored_points(root, run_id, score_run, color_by)
    versions = data.table_versions(root, ("projections", "samples", "decisions"))
    return _cached_decision_points(root, run_id, color_by, versions)


@st.cache_data(show_spinner=False, max_entries=4)
def _cached_decision_points(root: str, run_id: str, color_by: str, versions: Versions) -> pd.DataFrame:
    points = data.projection_points(root, run_id)
    states = curation_data.states(root).set_index("id")
    if color_by == "decision":
        decision = points["id"].map(states["decision"]).astype(object)
        return points.assign(decision=decision.where(decision.notna(), NO_DECISION))
    if color_by == map_data.CURRENT_LABEL:  # the given label unless a relabel moved it
        current = points["id"].map(states["current_label"]).astype(object)
        return points.assign(**{color_by: current.where(current.notna(), points["label"])})
    tag = color_by.removeprefix(TAG_PREFIX)
    tags = points["id"].map(states["tags"]).fillna("").astype(str)
    carries = tags.map(lambda text: tag in text.split(","))
    return points.assign(**{color_by: carries.map({True: TAGGED, False: "not tagged"})})


def gallery_rows(root: str, ids: list[str], score_run: str | None) -> pd.DataFrame:
    """One row per id that has a sample, in the order of ``ids``: id, label (current), path,
    decision, tags and, with a score run, every per-sample score it stored (label_issue_score,
    el2n, ...)."""
    samples = curation_data.curated_samples(root)[["id", "label", "path", "decision", "tags"]]
    rows = pd.DataFrame({"id": list(dict.fromkeys(ids))}).merge(samples, on="id")  # in the order of ids
    if score_run is not None:
        scores = data.scores_of(root, score_run, tuple(rows["id"])).drop(columns=["label_issue"], errors="ignore")
        rows = rows.merge(scores, on="id", how="left")
    return rows.reset_index(drop=True)


def score_columns(rows: pd.DataFrame) -> list[str]:
    """The numeric columns of :func:`gallery_rows` a gallery can sort by."""
    return [c for c in rows.columns if pd.api.types.is_numeric_dtype(rows[c]) and rows[c].notna().any()]


def label_and_split_names(root: str, run_id: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The labels and splits of a projection's points, in natural order (the filters' options)."""
    points = map_data.map_points(root, run_id)
    return points.labels, points.splits


def score_bounds(root: str, run_id: str, score_run: str | None, score: str) -> tuple[float, float] | None:
    """The smallest and largest finite value of ``score`` on the map; ``None`` without any."""
    coloring = map_data.map_coloring(root, run_id, score_run, score)
    finite = coloring.values[np.isfinite(coloring.values)] if coloring.numeric else np.zeros(0)
    return (float(finite.min()), float(finite.max())) if finite.size else None
