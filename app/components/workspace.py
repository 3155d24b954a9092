"""The shared sidebar (which workspace is shown) and the guard every page starts with."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app import data, state
from app.components import jobs_panel
from app.components.markdown_text import md
from backend.storage import StorageError, Workspace

SETUP_HINT = (
    "Create one with `thresher demo --workspace {root}` (the handwritten-digits demo) or "
    "`thresher ingest --workspace {root} SOURCE` (an image folder or a CSV/Parquet manifest), "
    "then start the app with `thresher app --workspace {root}`."
)


def not_a_workspace_message(root: str) -> str:
    return f"`{root}` is not a Thresher workspace. " + SETUP_HINT.format(root=root)


def refusal(root: str) -> str | None:
    """Why the folder ``root`` (symbolic links resolved) may not be opened here, or None.

    Anyone who can reach the app can type a folder into the sidebar or the address, so only the
    workspaces under the data root (``$THRESHER_DATA``) and the one the app was started on open,
    unless it was started with ``--any-workspace``; then any folder that is a workspace does."""
    path = Path(root)
    allowed = path.is_relative_to(state.data_root()) or root == _resolved(state.default_workspace_root())
    if not (allowed or state.any_workspace()):
        return (f"`{root}` is outside the data root `{state.data_root()}`: this app opens only the workspaces "
                f"under it and `{_resolved(state.default_workspace_root())}`, the one it was started on. To open "
                "others, start it with `THRESHER_DATA=FOLDER` (their parent folder) or with "
                "`thresher app --any-workspace`.")
    if not Workspace.exists(root):
        return not_a_workspace_message(root)
    return None


def _resolved(typed: str) -> str:
    return str(Path(typed).expanduser().resolve())


def _switch_workspace() -> None:
    """Sidebar callback: accept the typed folder only when it is a workspace this app may open."""
    typed = (st.session_state.get(state.WORKSPACE_INPUT) or "").strip()
    if not typed:
        state.set_workspace_error(None)
        return
    root = _resolved(typed)
    problem = refusal(root)
    if problem is None:
        state.set_workspace_root(root)
        state.set_workspace_error(None)
    else:
        state.set_workspace_error(problem + f" Still showing `{state.workspace_root()}`.")


def open_from_address() -> None:
    """On a session's first run (a new tab, a reload), open the workspace the address names
    (``?workspace=``) when it is one this app may open; otherwise say why and keep the default."""
    if state.has_workspace_root():
        return
    named = state.workspace_in_address()
    if named is None:
        return
    root = _resolved(named)
    problem = refusal(root)
    if problem is None:
        state.set_workspace_root(root)
    else:
        state.set_workspace_error(
            problem + f" (named by the address, `?{state.WORKSPACE_PARAM}=`). Showing `{state.workspace_root()}`."
        )


def workspace_sidebar() -> str:
    """Show the current workspace and a box to open another; returns the current folder, which
    the address keeps (``?workspace=``: a reload shows the same one)."""
    open_from_address()
    root = state.workspace_root()
    state.keep_workspace_in_address(root)
    if state.WORKSPACE_INPUT not in st.session_state:
        st.session_state[state.WORKSPACE_INPUT] = root
    with st.sidebar:
        st.caption("Workspace")
        st.text_input(
            "Workspace folder",
            key=state.WORKSPACE_INPUT,
            on_change=_switch_workspace,
            help="A folder made by `thresher ingest` or `thresher demo`, under the data root "
            f"`{state.data_root()}` (or any, with `thresher app --any-workspace`). Press Enter to open it.",
            label_visibility="collapsed",
        )
        error = state.workspace_error()
        if error:
            st.error(error)
        elif Workspace.exists(root):
            st.caption(f"Showing `{Path(root).name}`")
        jobs_panel.running_indicator(root)
    return root


def require_workspace() -> tuple[str, Workspace]:
    """The current workspace folder and handle; otherwise explain how to make one and stop the page."""
    root = state.workspace_root()
    if not Workspace.exists(root):
        st.info(not_a_workspace_message(root))
        st.stop()
    try:
        return root, data.open_workspace(root)
    except StorageError as exc:
        st.error(f"Cannot open workspace `{root}`: {md(exc)}")
        st.stop()
