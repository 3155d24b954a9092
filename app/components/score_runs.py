"""Picking a scoring run (Review, Prune, Collapse) and what to say when there is none."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from app import data
from app.components.wording import number


def no_score_run_message(workspace_root: Path | str) -> str:
    return (
        f"No score run yet: run `thresher score --workspace {workspace_root}` "
        "(label-issue verdicts, pruning scores and neural-collapse metrics), then reload this page."
    )


def when_text(created_at: object, now: pd.Timestamp | None = None) -> str:
    """A run's start, short: "12-07 19:04" this year, "2025-12-07 19:04" before."""
    when = pd.Timestamp(created_at)
    now = pd.Timestamp.now(tz=when.tz) if now is None else now
    return when.strftime("%m-%d %H:%M" if when.year == now.year else "%Y-%m-%d %H:%M")


def run_label(run: pd.Series) -> str:
    """"<when> · <id tail> · N issues / M · <embedding>": what tells runs apart comes first, since
    a narrow select box cuts the end off (the run id's tail keeps two runs of the same minute apart:
    a select box picks by the text)."""
    summary = run["summary"] or {}
    flagged = number(summary.get("n_label_issues", "?"))
    scored = number(summary.get("n_samples", "?"))
    return (f"{when_text(run['created_at'])} · {str(run['run_id'])[-6:]} · {flagged} issues / {scored} · "
            f"{run['embedding_key']}")


def require_score_run(root: str, workspace_root: Path | str, *, key: str) -> str:
    """The score run the page shows (chosen with :func:`choose_score_run`); with none, the page
    says how to make one and stops."""
    score_runs = data.score_runs(root)
    if score_runs.empty:
        st.info(no_score_run_message(workspace_root))
        st.stop()
    return choose_score_run(score_runs, key=key)


def choose_score_run(score_runs: pd.DataFrame, *, key: str) -> str:
    """A select box over finished score runs (newest first, so the latest is the default)."""
    labels = {row["run_id"]: run_label(row) for _, row in score_runs.iterrows()}
    return st.selectbox("Score run", list(labels), format_func=labels.__getitem__, key=key)
