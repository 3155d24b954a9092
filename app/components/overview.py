"""The Overview page's panels: headline counts, the latest ingest's report and the tables of runs."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from app.components.metric_row import metric_row
from app.data import OverviewCounts
from app.overview_data import IngestReportView

RUN_COLUMNS = ["run_id", "status", "embedding_key", "created_at", "finished_at", "summary", "error"]


def metrics_row(counts: OverviewCounts) -> None:
    cells = [
        ("Samples", counts.samples),
        ("Classes", counts.classes),
        ("Splits", counts.splits),
        ("Embedding models", counts.embedding_models),
        ("Vectors", counts.vectors),
        ("Projection runs", counts.projection_runs),
        ("Subsets", counts.subsets),
    ]
    metric_row([(label, f"{value:,}") for label, value in cells])


def runs_frame(runs: pd.DataFrame, columns: list[str] = RUN_COLUMNS) -> pd.DataFrame:
    """``columns`` of a ``runs.list_runs`` frame, with the summary as short text."""
    if runs.empty:
        return pd.DataFrame(columns=columns)
    shown = runs.assign(summary=[json.dumps(s, default=str)[:200] for s in runs["summary"]])
    return shown[columns]


def runs_table(title: str, runs: pd.DataFrame, *, empty_hint: str) -> None:
    st.markdown(f"**{title}**")
    if runs.empty:
        st.caption(empty_hint)
    else:
        st.dataframe(runs_frame(runs), hide_index=True)


def table_or_hint(title: str, frame: pd.DataFrame, *, empty_hint: str) -> None:
    st.markdown(f"**{title}**")
    if frame.empty:
        st.caption(empty_hint)
    else:
        st.dataframe(frame, hide_index=True)


def ingest_report(report: IngestReportView | None) -> None:
    """The latest ingest: what it read, how many files it skipped per reason, and every problem."""
    st.markdown("**Latest ingest**")
    if report is None:
        st.caption("No ingest yet.")
        return
    skipped = int(report.reasons["skipped"].sum()) if len(report.reasons) else 0
    ingested = "" if report.n_ingested is None else f"{report.n_ingested:,} samples ingested, "
    st.caption(f"Run `{report.run_id}` ({report.status}) from `{report.source}`: {ingested}{skipped:,} files "
               f"skipped. Report: `{report.report_path}`")  # fmt: skip
    if report.error:
        st.error(f"The ingest failed: {report.error}")
    if report.missing:
        st.warning(f"No report to show: {report.missing}.")
        return
    if skipped:
        st.dataframe(report.reasons, hide_index=True)
    if len(report.problems):
        with st.expander(f"Every problem ({len(report.problems):,}: files skipped, columns ignored)"):
            st.dataframe(report.problems, hide_index=True)
    else:
        st.caption("Every file was read: nothing skipped.")
