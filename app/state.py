"""Named session-state keys and typed get/set helpers.

Every key the app keeps in ``st.session_state`` is declared here, so pages never spell a key
twice and tests can set or read the same names. Widget keys live here too: a widget created
with ``key=state.EXPLORE_COLOR`` stores its value under that name.
"""

from __future__ import annotations

import os

import streamlit as st

from backend.config import DEFAULT_WORKSPACE

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
