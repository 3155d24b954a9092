"""The Explore page's controls: which projection run to show, which score run colours it, and
what colours the points (label, split, decision, a tag, or the score run's verdict and scores)."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from app import state
from app.components.scatter import COLOR_CHOICES, TAG_PREFIX
from app.components.score_runs import run_label as score_run_label
from app.components.score_runs import when_text
from app.components.wording import number
from app.map_data import CURRENT_LABEL, NO_DECISION, MapFilter
from backend.jobs.health_stage import FLAG_COLUMNS, SCORE_COLUMNS

#: Colourings from the decisions log.
DECISION_COLORS = ("decision", CURRENT_LABEL)
#: Colourings a score run adds before its scores: the verdict and its score.
LABEL_ISSUE_COLORS = ("label_issue", "label_issue_score")
COLOR_NAMES = {
    "label": "given label",
    "decision": "decision (kept, relabeled, dropped, unsure)",
    CURRENT_LABEL: "current label (after relabels)",
    "label_issue": "label issue (flagged or not)",
    "label_issue_score": "label-issue score",
}


def run_label(run: pd.Series) -> str:
    method = (run["config"] or {}).get("method", "?")
    points = number((run["summary"] or {}).get("n_points", "?"))
    return f"{when_text(run['created_at'])} · {method} of {run['embedding_key']} · {points} points"


def choose_run(project_runs: pd.DataFrame) -> str:
    """A select box over finished projection runs (newest first, so the latest is the default)."""
    labels = {row["run_id"]: run_label(row) for _, row in project_runs.iterrows()}
    return st.selectbox(
        "Projection", list(labels), format_func=labels.__getitem__, key=state.EXPLORE_RUN
    )


def choose_score_run(score_runs: pd.DataFrame, *, key: str = state.EXPLORE_SCORE_RUN) -> str | None:
    """A select box over finished score runs (newest first, the default); ``None`` without any.
    Each label ends with the run id's tail: two runs made in the same minute would otherwise show
    the same text, and a select box tells its options apart by their text."""
    if score_runs.empty:
        return None
    labels = {row["run_id"]: score_run_label(row) for _, row in score_runs.iterrows()}  # with the id's tail
    return st.selectbox("Score run", list(labels), format_func=labels.__getitem__, key=key)


def color_choices(score_runs: pd.DataFrame, score_run: str | None, tags: list[str]) -> list[str]:
    """label, split, decision, one ``tag:<name>`` per tag; with a score run also its verdict,
    every score it computed and, when it ran the health checks, their flags and scores."""
    choices = [*COLOR_CHOICES, *DECISION_COLORS, *(f"{TAG_PREFIX}{tag}" for tag in tags)]
    chosen = score_runs[score_runs["run_id"] == score_run] if score_run is not None else score_runs.iloc[:0]
    if chosen.empty:
        return choices
    scorers = (chosen["config"].iloc[0] or {}).get("scorers") or []
    health = [*FLAG_COLUMNS, *SCORE_COLUMNS] if "health" in (chosen["summary"].iloc[0] or {}) else []
    return [*choices, *LABEL_ISSUE_COLORS, *scorers, *health]


def color_name(choice: str) -> str:
    if choice in COLOR_NAMES:
        return COLOR_NAMES[choice]
    if choice in COLOR_CHOICES:
        return choice
    if choice.startswith(TAG_PREFIX):
        return f"tag: {choice.removeprefix(TAG_PREFIX)}"
    return f"flag: {choice}" if choice in FLAG_COLUMNS else f"score: {choice}"


def choose_color(choices: list[str] | tuple[str, ...] = COLOR_CHOICES) -> str:
    return st.selectbox("Colour by", choices, format_func=color_name, key=state.EXPLORE_COLOR)


#: The decisions a filter can ask for (``none``: samples without a decision).
DECISION_FILTERS = (NO_DECISION, "kept", "relabeled", "unsure", "dropped")
FILTER = state.EXPLORE_FILTER


def choose_filters(labels: tuple[str, ...], splits: tuple[str, ...], tags: list[str], choices: list[str],
                   score_bounds: Callable[[str], tuple[float, float] | None]) -> MapFilter:
    """The map's filters, in an expander: labels, splits, decisions, tags, flags (the verdict
    and the health checks among ``choices``) and one score's range (``score_bounds``: its
    smallest and largest value, ``None`` without any)."""
    flags = [c for c in choices if c == "label_issue" or c in FLAG_COLUMNS]
    scores = [c for c in choices if c not in (*COLOR_CHOICES, *DECISION_COLORS, *flags, "suggested_label")
              and not c.startswith(TAG_PREFIX)]
    flags_key = state.EXPLORE_FILTER_FLAGS  # an Overview health button sets it: open the filters to show it
    with st.expander("Filters", expanded=bool(st.session_state.get(flags_key))):
        left, middle, right = st.columns(3)
        chosen_labels = left.multiselect("Given labels", labels, key=f"{FILTER}.labels",
                                         help="The labels as ingested; filter by decision for relabeled samples.")
        chosen_splits = middle.multiselect("Splits", splits, key=f"{FILTER}.splits")
        decided = right.multiselect("Decisions", DECISION_FILTERS, key=f"{FILTER}.decisions")
        left, middle, right = st.columns(3)
        tagged = left.multiselect("Tags (any of)", tags, key=f"{FILTER}.tags")
        flagged = middle.multiselect("Flagged by (any of)", flags, format_func=color_name, key=flags_key)
        score = right.selectbox("Score range", [None, *scores], format_func=lambda c: "(none)" if c is None else c,
                                key=f"{FILTER}.score")
        score_range = None
        bounds = score_bounds(score) if score is not None else None
        if bounds is not None and bounds[1] > bounds[0]:
            low, high = st.slider(f"{score} between", bounds[0], bounds[1], bounds, key=f"{FILTER}.range.{score}")
            score_range = (float(low), float(high))
    return MapFilter(labels=tuple(chosen_labels), splits=tuple(chosen_splits), decisions=tuple(decided),
                     tags=tuple(tagged), flags=tuple(flagged), score=score, score_range=score_range)
