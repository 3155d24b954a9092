"""Named session-state keys and typed get/set helpers.

Every key the app keeps in ``st.session_state`` is declared here, so pages never spell a key
twice and tests can set or read the same names. Widget keys live here too: a widget created
with ``key=state.EXPLORE_COLOR`` stores its value under that name.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import streamlit as st

from backend.config import DEFAULT_WORKSPACE

if TYPE_CHECKING:
    from app.prune_data import PruneDone

#: Environment variable ``thresher app --workspace W`` sets (see ``backend.commands.app_command``).
WORKSPACE_ENV = "THRESHER_WORKSPACE"

# The workspace every page shows, and the sidebar's text box that can change it.
WORKSPACE_ROOT = "workspace.root"
WORKSPACE_INPUT = "workspace.input"
WORKSPACE_ERROR = "workspace.error"

# Overview.
OVERVIEW_STACK_BY_SPLIT = "overview.stack_by_split"

# Explore: which projection run, how to colour it, the chart (its selection), the save form.
EXPLORE_RUN = "explore.run_id"
EXPLORE_COLOR = "explore.color_by"
EXPLORE_MAP = "explore.map"
EXPLORE_SUBSET_NAME = "explore.subset_name"
EXPLORE_OVERWRITE = "explore.overwrite"

# Export.
EXPORT_SOURCE = "export.source"
EXPORT_FORMAT = "export.format"
EXPORT_SOFT_LABELS = "export.soft_labels"

# Review: which score run, the filters, the table (its row selection), the save form.
REVIEW_RUN = "review.run_id"
REVIEW_THRESHOLD = "review.threshold"
REVIEW_INCLUDE_UNFLAGGED = "review.include_unflagged"
REVIEW_CLASSES = "review.classes"
REVIEW_DETECTORS = "review.detectors"
REVIEW_TABLE = "review.table"
REVIEW_SAVE_ALL = "review.save_all_shown"
REVIEW_SUBSET_NAME = "review.subset_name"
REVIEW_OVERWRITE = "review.overwrite"

# Prune: the score run, the procedure's settings, the subset name, and the last result.
PRUNE_RUN = "prune.run_id"
PRUNE_RATIO = "prune.ratio"
PRUNE_METHOD = "prune.method"
PRUNE_SCORE = "prune.score"
PRUNE_POLICY = "prune.per_class"
PRUNE_MIN_PER_CLASS = "prune.min_per_class"
PRUNE_SEED = "prune.seed"
PRUNE_SPLIT = "prune.split"
PRUNE_DEDUP = "prune.dedup"
PRUNE_LABEL_ISSUES = "prune.exclude_label_issues"
PRUNE_SUBSET_NAME = "prune.subset_name"
PRUNE_OVERWRITE = "prune.overwrite"
PRUNE_OPTION = "prune.option"  # + ".<method>.<parameter>"
PRUNE_HISTOGRAM_SCORE = "prune.histogram_score"
PRUNE_LAST = "prune.last_result"
PRUNE_EVAL_SUBSET = "prune.evaluate_subset"

# Collapse: the score run, which source's metrics, the curve's metrics, the per-class metric.
COLLAPSE_RUN = "collapse.run_id"
COLLAPSE_SOURCE = "collapse.source"
COLLAPSE_CURVE_METRICS = "collapse.curve_metrics"
COLLAPSE_CURVE_LOG = "collapse.curve_log_y"
COLLAPSE_CLASS_METRIC = "collapse.class_metric"


# Runs: the list's kind filter, the two compared runs, the delete form, the last deletion.
RUNS_KIND = "runs.kind"
RUNS_COMPARE_KIND = "runs.compare_kind"
RUNS_COMPARE_A = "runs.compare_a"  # + ".<kind>"
RUNS_COMPARE_B = "runs.compare_b"  # + ".<kind>"
RUNS_ALL_SETTINGS = "runs.all_settings"
RUNS_DELETE = "runs.delete_id"
RUNS_DELETE_CONFIRM = "runs.delete_confirm"  # + ".<run id>"
RUNS_DELETE_FORCE = "runs.delete_force"  # + ".<run id>"
RUNS_DELETED = "runs.deleted"


def default_workspace_root() -> str:
    """The workspace named by ``$THRESHER_WORKSPACE``, else the default demo workspace."""
    return os.environ.get(WORKSPACE_ENV) or str(DEFAULT_WORKSPACE)


def workspace_root() -> str:
    """The workspace folder the pages show (initialised from the environment on first use)."""
    if WORKSPACE_ROOT not in st.session_state:
        st.session_state[WORKSPACE_ROOT] = default_workspace_root()
    return st.session_state[WORKSPACE_ROOT]


def set_workspace_root(root: str) -> None:
    st.session_state[WORKSPACE_ROOT] = root


def workspace_error() -> str | None:
    """Why the last workspace typed into the sidebar was refused (``None`` when it was not)."""
    return st.session_state.get(WORKSPACE_ERROR)


def set_workspace_error(message: str | None) -> None:
    st.session_state[WORKSPACE_ERROR] = message


def last_prune(root: str) -> PruneDone | None:
    """The last prune this session ran on workspace ``root`` (``None`` before the first)."""
    done = st.session_state.get(PRUNE_LAST)
    return done if done is not None and done.root == root else None


def set_last_prune(done: PruneDone) -> None:
    st.session_state[PRUNE_LAST] = done
