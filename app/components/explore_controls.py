"""The Explore page's controls: which projection run to show and what colours the points."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import state
from app.components.scatter import COLOR_CHOICES

#: Colourings a score run adds before its scores: the verdict and its score.
LABEL_ISSUE_COLORS = ("label_issue", "label_issue_score")
COLOR_NAMES = {
    "label_issue": "label issue (flagged or not)",
    "label_issue_score": "label-issue score",
}


def run_label(run: pd.Series) -> str:
    method = (run["config"] or {}).get("method", "?")
    when = pd.Timestamp(run["created_at"]).strftime("%Y-%m-%d %H:%M")
    points = (run["summary"] or {}).get("n_points", "?")
    return f"{when} · {method} of {run['embedding_key']} · {points} points"


def choose_run(project_runs: pd.DataFrame) -> str:
    """A select box over finished projection runs (newest first, so the latest is the default)."""
    labels = {row["run_id"]: run_label(row) for _, row in project_runs.iterrows()}
    return st.selectbox(
        "Projection", list(labels), format_func=labels.__getitem__, key=state.EXPLORE_RUN
    )


def latest_score_run(score_runs: pd.DataFrame) -> str | None:
    """The newest finished score run's id (what Explore colours by), or ``None``."""
    return None if score_runs.empty else str(score_runs["run_id"].iloc[0])


def color_choices(score_runs: pd.DataFrame) -> list[str]:
    """label and split; with a score run also its verdict and every score it computed."""
    if score_runs.empty:
        return list(COLOR_CHOICES)
    scorers = (score_runs["config"].iloc[0] or {}).get("scorers") or []
    return [*COLOR_CHOICES, *LABEL_ISSUE_COLORS, *scorers]


def color_name(choice: str) -> str:
    if choice in COLOR_CHOICES:
        return choice
    return COLOR_NAMES.get(choice, f"score: {choice}")


def choose_color(choices: list[str] | tuple[str, ...] = COLOR_CHOICES) -> str:
    return st.selectbox("Colour by", choices, format_func=color_name, key=state.EXPLORE_COLOR)
