"""Named session-state keys and typed get/set helpers.

Every key the app keeps in ``st.session_state`` is declared here, so pages never spell a key
twice and tests can set or read the same names. Widget keys live here too: a widget created
with ``key=state.EXPLORE_COLOR`` stores its value under that name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from backend import config

if TYPE_CHECKING:
    from app.prune_data import PruneDone

#: Environment variable ``thresher app --workspace W`` sets (see ``backend.commands.app_command``).
WORKSPACE_ENV = "THRESHER_WORKSPACE"
#: Set to 1 by ``thresher app --any-workspace``: the sidebar may open any folder on the server.
ANY_WORKSPACE_ENV = "THRESHER_ANY_WORKSPACE"

# The workspace every page shows, and the sidebar's text box that can change it.
WORKSPACE_ROOT = "workspace.root"
#: The query parameter that keeps the shown workspace in the address (``?workspace=/abs/path``),
#: so that a browser reload or a shared link opens the same one.
WORKSPACE_PARAM = "workspace"
WORKSPACE_INPUT = "workspace.input"
WORKSPACE_ERROR = "workspace.error"

# Overview.
OVERVIEW_STACK_BY_SPLIT = "overview.stack_by_split"
OVERVIEW_GO_TO = "overview.go_to"  # a page a health button asked for (switched to on the next run)

# Overview's Subsets section: the two compared, the rename and delete forms, the last action's notice.
SUBSETS_COMPARE_A = "subsets.compare_a"
SUBSETS_COMPARE_B = "subsets.compare_b"
SUBSETS_RENAME_FROM = "subsets.rename_from"
SUBSETS_RENAME_TO = "subsets.rename_to"
SUBSETS_DELETE = "subsets.delete_name"
SUBSETS_DELETE_CONFIRM = "subsets.delete_confirm"  # + ".<subset name>"
SUBSETS_NOTICE = "subsets.notice"

# Explore: which projection run, how to colour it, the chart (its selection), the save form.
EXPLORE_RUN = "explore.run_id"
EXPLORE_COLOR = "explore.color_by"
EXPLORE_MAP = "explore.map"
#: Bumped by "Clear selection": the maps' widget keys end with it, so the charts start afresh
#: without the box or lasso they still drew (``selection.map_key``).
EXPLORE_MAP_GENERATION = "explore.map_generation"
EXPLORE_SUBSET_NAME = "explore.subset_name"
EXPLORE_OVERWRITE = "explore.overwrite"
# Explore: the score run that colours the map, the selected ids (kept apart from the chart, so a
# new colouring keeps them), a clicked point waiting to open, the selection's gallery, the actions.
EXPLORE_SCORE_RUN = "explore.score_run"
EXPLORE_SELECTION = "explore.selection"
EXPLORE_SELECTION_BASIS = "explore.selection_basis"  # the figure it was made on (selection.figure_basis)
EXPLORE_CLICKED = "explore.clicked"
EXPLORE_GALLERY = "explore.gallery"  # + ".sort" / ".descending" / ".page"
EXPLORE_ACTIONS = "explore.actions"
# Explore above the point budget (app/components/density_view.py): the density chart, its box or
# lasso kept as shapes (map_data.MapArea) and the figure it was made on, the zoomed region
# (map_density.Extent), and the filters' widgets.
EXPLORE_DENSITY_MAP = "explore.density_map"
EXPLORE_AREA = "explore.area"
EXPLORE_AREA_BASIS = "explore.area_basis"
EXPLORE_ZOOM = "explore.zoom"
EXPLORE_FILTER = "explore.filter"  # + ".labels" / ".splits" / ".decisions" / ".tags" / ".flags" / ".score" / ".range"
EXPLORE_FILTER_FLAGS = f"{EXPLORE_FILTER}.flags"  # the Overview health buttons set it

# Search: the query's mode, embedding, size and inputs, the last image/text results, the gallery,
# the actions and the save form. SEARCH_LIKE_ID is what the sample view's "Find similar" fills in.
SEARCH_MODE = "search.mode"
SEARCH_EMBEDDING = "search.embedding"
SEARCH_TOP = "search.top"
SEARCH_SCORE_RUN = "search.score_run"
SEARCH_LIKE_ID = "search.like_id"
SEARCH_UPLOAD = "search.upload"
SEARCH_TEXT = "search.text"
SEARCH_RESULTS = "search.results"
SEARCH_GALLERY = "search.gallery"
SEARCH_ACTIONS = "search.actions"
SEARCH_SUBSET_NAME = "search.subset_name"
SEARCH_OVERWRITE = "search.overwrite"

# Export.
EXPORT_SOURCE = "export.source"
EXPORT_FORMAT = "export.format"
EXPORT_SOFT_LABELS = "export.soft_labels"
EXPORT_INCLUDE_DROPPED = "export.include_dropped"
EXPORT_COPY = "export.copy"  # image folder: copies instead of symbolic links
EXPORT_REPLACE = "export.replace"  # the confirmation that an existing file of that name may be replaced
EXPORT_SCORE_RUN = "export.score_run"
EXPORT_SCORE_FORMAT = "export.score_format"

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

# Decisions (shared by every page that decides): the last outcome, this session's Undo stack.
DECISION_ACK = "decision.ack"
DECISION_UNDO_STACK = "decision.undo_stack"
#: The decision Undo asks to confirm: the author's latest from before this session (``decision_actions``).
DECISION_UNDO_CONFIRM = "decision.undo_confirm"

# Review queue: the view, samples skipped this session, the sample to show first (after an undo),
# whether the class picker is open, the table's ticked ids, the bulk-accept size, the sample view.
REVIEW_VIEW = "review.view"
REVIEW_SKIPPED = "review.skipped"
REVIEW_FOCUS = "review.focus"
REVIEW_RELABEL_OPEN = "review.relabel_open"
REVIEW_TICKED = "review.ticked"
#: {table key: the ticks the table editor started from} (``review_panel.issue_table``).
REVIEW_TICK_BASE = "review.tick_base"
REVIEW_SCORE_RANGE = "review.score_range"
REVIEW_BULK_K = "review.bulk_k"
REVIEW_BULK_PENDING = "review.bulk_pending"
SAMPLE_VIEW_ID = "sample_view.id"

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
PRUNE_EVAL_FOLLOWS = "prune.evaluate_follows"  # the prune run whose subset the picker last took

# Jobs: the start forms' fields, the job one of them just started.
JOBS_FORM = "jobs.form"  # + ".<kind>.<parameter>"
JOBS_STARTED = "jobs.started"  # the job a form just started (shown once)

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
    return os.environ.get(WORKSPACE_ENV) or str(config.DEFAULT_WORKSPACE)


def any_workspace() -> bool:
    """Whether the app was started with ``--any-workspace`` (else only the data root's folders open)."""
    return os.environ.get(ANY_WORKSPACE_ENV) == "1"


def data_root() -> Path:
    """The folder whose workspaces the sidebar may open (``$THRESHER_DATA``, symbolic links resolved)."""
    return Path(config.DEFAULT_DATA_DIR).expanduser().resolve()


def workspace_root() -> str:
    """The workspace folder the pages show (initialised from the environment on first use; the
    sidebar first takes the one the address names: ``components.workspace.open_from_address``)."""
    if WORKSPACE_ROOT not in st.session_state:
        st.session_state[WORKSPACE_ROOT] = default_workspace_root()
    return st.session_state[WORKSPACE_ROOT]


def has_workspace_root() -> bool:
    """Whether this session has chosen its workspace yet (False on a session's first run)."""
    return WORKSPACE_ROOT in st.session_state


def set_workspace_root(root: str) -> None:
    st.session_state[WORKSPACE_ROOT] = root
    keep_workspace_in_address(root)


def workspace_in_address() -> str | None:
    """The workspace the address names (``?workspace=``), as typed there; None when it names none."""
    return st.query_params.get(WORKSPACE_PARAM) or None


def keep_workspace_in_address(root: str) -> None:
    """Write ``root`` into the address (only when it differs: each write is a message to the browser)."""
    if st.query_params.get(WORKSPACE_PARAM) != root:
        st.query_params[WORKSPACE_PARAM] = root


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
