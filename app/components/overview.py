"""The Overview page's panels: headline counts, the latest ingest's report and the tables of runs."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from app import state
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


#: The score run's health flags (``backend.jobs.health_stage``) as the Overview names them.
HEALTH_LABELS = {
    "is_exact_duplicate": "exact duplicates",
    "is_near_duplicate": "near duplicates",
    "is_split_leak": "split leaks (val/test copies of train)",
    "is_outlier": "outliers (Mahalanobis)",
    "is_knn_outlier": "outliers (kNN distance)",
    "is_dark": "dark",
    "is_bright": "bright",
    "is_blurry": "blurry",
    "is_low_information": "low information",
    "is_odd_size": "odd size",
    "is_grayscale": "grayscale",
}


def health_counts(score_runs: pd.DataFrame) -> tuple[str, dict[str, int]] | None:
    """(run id, {issue name: count}) of the newest score run that checked dataset health; None
    without one."""
    for _, row in score_runs.iterrows():
        health = (row["summary"] or {}).get("health") if isinstance(row["summary"], dict) else None
        if health:
            counts = health.get("counts", {})
            return row["run_id"], {label: int(counts.get(name, 0)) for name, label in HEALTH_LABELS.items()}
    return None


def health_summary(score_runs: pd.DataFrame) -> None:
    """Counts per dataset-health issue of the newest score run that has them."""
    st.subheader("Dataset health")
    found = health_counts(score_runs)
    if found is None:
        st.caption("No score run with health checks yet: run `thresher score` on this workspace.")
        return
    run_id, counts = found
    st.markdown(" · ".join(f"{label}: **{n:,}**" for label, n in counts.items()))
    st.caption(f"From score run `{run_id}`. A button opens Explore on just those samples (the Filters' "
               "'Flagged by'; clear it to see them among the rest); the scores export has every column; "
               "duplicate groups are resolved on the Duplicates page.")
    with st.container(horizontal=True):
        for (name, label), n in zip(HEALTH_LABELS.items(), counts.values(), strict=True):
            if n:
                st.button(f"{label}: {n:,}", key=f"overview.health.{name}", on_click=_show_on_map,
                          args=(run_id, name), help=f"Explore, coloured by {name}")
        st.page_link("views/duplicates.py", label="Duplicates page", icon=":material/content_copy:")


def _show_on_map(run_id: str, column: str) -> None:
    """Open Explore on the samples ``column`` of ``run_id`` flags, coloured by it (a button's
    callback): a handful of flags among thousands of points is hard to find by colour alone."""
    st.session_state[state.EXPLORE_SCORE_RUN] = run_id
    st.session_state[state.EXPLORE_COLOR] = column
    st.session_state[state.EXPLORE_FILTER_FLAGS] = [column]
    st.session_state[state.OVERVIEW_GO_TO] = "views/explore.py"
