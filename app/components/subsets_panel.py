"""The Overview's Subsets section: the saved subsets, and comparing, renaming and deleting them."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import overview_data, state
from app.components.markdown_text import md
from app.components.metric_row import metric_row
from backend.storage.errors import StorageError

EMPTY_HINT = "No subsets yet: select points on the Explore page and save them, or prune on the Prune page."
#: Every widget of the section: forgotten after an action, so that no box points at a subset
#: that was just renamed or deleted.
FORM_KEYS = (state.SUBSETS_COMPARE_A, state.SUBSETS_COMPARE_B, state.SUBSETS_RENAME_FROM,
             state.SUBSETS_RENAME_TO, state.SUBSETS_DELETE)  # fmt: skip


def subsets_section(root: str, saved: pd.DataFrame) -> None:
    """The list (``app.data.subset_list``), then Compare / Rename / Delete tabs."""
    st.subheader("Subsets")
    notice = st.session_state.pop(state.SUBSETS_NOTICE, None)
    if notice:
        st.success(notice)
    if saved.empty:
        st.caption(EMPTY_HINT)
        return
    st.dataframe(saved, hide_index=True)
    compare, rename, delete = st.tabs(["Compare two", "Rename", "Delete"])
    with compare:
        compare_form(root, saved)
    with rename:
        rename_form(root, saved)
    with delete:
        delete_form(root, saved)


def _done(message: str) -> None:
    """Say what the click did (on the next run, at the top of the section) and start over."""
    st.session_state[state.SUBSETS_NOTICE] = message
    for key in FORM_KEYS:
        st.session_state.pop(key, None)
    st.rerun()


def compare_form(root: str, saved: pd.DataFrame) -> None:
    """Two subsets (the newest as b, the one before as a): counts, Jaccard and per class."""
    names = saved["name"].tolist()
    if len(names) < 2:
        st.caption("Comparing needs two saved subsets.")
        return
    left, right = st.columns(2)
    a = left.selectbox("Subset a", names, index=1, key=state.SUBSETS_COMPARE_A)
    b = right.selectbox("Subset b", names, index=0, key=state.SUBSETS_COMPARE_B)
    if a == b:
        st.info("Pick two different subsets.")
        return
    try:
        cmp = overview_data.subset_comparison(root, a, b)
    except StorageError as exc:
        st.error(md(exc))
        return
    counts = cmp.counts
    jaccard = "n/a" if counts["jaccard"] is None else f"{counts['jaccard']:.2f}"
    metric_row([("In a", f"{counts['n_a']:,}"), ("In b", f"{counts['n_b']:,}"), ("In both", f"{counts['n_by_both']:,}"),
                ("Only a / only b", f"{counts['only_a']:,} / {counts['only_b']:,}"), ("Jaccard", jaccard)])  # fmt: skip
    st.caption("Per class (the ingested label):")
    st.dataframe(cmp.by_class.rename(columns={"n_a": "in a", "n_b": "in b", "n_by_both": "in both"}),
                 hide_index=True)  # fmt: skip


def rename_form(root: str, saved: pd.DataFrame) -> None:
    """Pick a subset, type a new name (refused when it exists), rename."""
    left, right = st.columns(2)
    old = left.selectbox("Subset to rename", saved["name"].tolist(), key=state.SUBSETS_RENAME_FROM)
    new = right.text_input("New name", key=state.SUBSETS_RENAME_TO,
                           placeholder="1-80 letters, digits, spaces, '_', '.', '-'")  # fmt: skip
    st.caption("A prune run still finds its subset after a rename; an evaluation lists the name the subset had "
               "when it ran.")
    if st.button("Rename", disabled=not (new or "").strip(), key="subsets.rename_button"):
        try:
            n = overview_data.rename_subset(root, old, new)
        except StorageError as exc:
            st.error(f"Nothing was renamed: {md(exc)}")
            return
        _done(f"Renamed subset '{old}' to '{new.strip()}' ({n:,} samples).")


def delete_form(root: str, saved: pd.DataFrame) -> None:
    """Pick a subset, confirm (a box keyed by the subset), delete."""
    name = st.selectbox("Subset to delete", saved["name"].tolist(), index=None, placeholder="choose a subset",
                        key=state.SUBSETS_DELETE)  # fmt: skip
    if name is None:
        return
    n = int(saved.loc[saved["name"] == name, "n"].iloc[0])
    st.caption("Deletes the subset, not its samples, runs or label decisions; the workspace's activity log keeps "
               "a record of it.")
    # keyed by subset: a box ticked for one subset never confirms another picked afterwards
    confirmed = st.checkbox(f"Yes, delete subset '{name}' ({n:,} samples)",
                            key=f"{state.SUBSETS_DELETE_CONFIRM}.{name}")  # fmt: skip
    if st.button("Delete the subset", type="primary", disabled=not confirmed, key="subsets.delete_button"):
        try:
            overview_data.delete_subset(root, name)
        except StorageError as exc:
            st.error(f"Nothing was deleted: {md(exc)}")
            return
        st.session_state.pop(f"{state.SUBSETS_DELETE_CONFIRM}.{name}", None)
        _done(f"Deleted subset '{name}' ({n:,} samples).")
