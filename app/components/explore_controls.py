"""The Explore page's controls: which projection run to show and what colours the points."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import state
from app.components.scatter import COLOR_CHOICES


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


def choose_color() -> str:
    return st.selectbox("Colour by", COLOR_CHOICES, key=state.EXPLORE_COLOR)
