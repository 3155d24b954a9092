"""What the Explore page shows under the map for a box or lasso selection."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import data, state
from app.components.thumbnails import thumbnail_grid
from backend.storage import ConflictError, StorageError

MAX_THUMBNAILS = 60
THUMBNAIL_SIZE = 64


def selection_panel(root: str, points: pd.DataFrame, ids: list[str], *, run_id: str | None) -> None:
    """Count, per-label summary, first thumbnails and the save-as-subset form for ``ids``."""
    if not ids:
        st.caption(
            "Drag a box or a lasso on the map to select samples (the modebar switches between them)."
        )
        return
    chosen = points[points["id"].isin(ids)]
    by_label = chosen["label"].fillna("(none)").astype(str).value_counts()
    st.subheader(f"{len(chosen)} selected")
    st.caption(" · ".join(f"{label}: {n}" for label, n in by_label.items()))
    save_form(root, chosen["id"].tolist(), run_id=run_id)
    if len(chosen) > MAX_THUMBNAILS:
        st.caption(f"Showing the first {MAX_THUMBNAILS} of {len(chosen)}.")
    thumbnail_grid(chosen.head(MAX_THUMBNAILS), data.thumbnail, size=THUMBNAIL_SIZE)


def save_form(root: str, ids: list[str], *, run_id: str | None) -> None:
    """Save ``ids`` as a named subset; a name clash needs the explicit overwrite box."""
    with st.form("explore.save_form"):
        name = st.text_input(
            "Save the selection as subset",
            key=state.EXPLORE_SUBSET_NAME,
            placeholder="e.g. blurry-sevens",
        )
        overwrite = st.checkbox(
            "Replace an existing subset with this name", key=state.EXPLORE_OVERWRITE
        )
        submitted = st.form_submit_button(f"Save {len(ids)} samples")
    if not submitted:
        return
    try:
        saved = data.save_selection(root, name, ids, run_id=run_id, overwrite=overwrite)
    except ConflictError as exc:
        st.error(f"{exc}. Nothing was saved: pick a new name, or tick the box above to replace it.")
        return
    except StorageError as exc:
        st.error(f"Nothing was saved: {exc}")
        return
    verb = "Replaced" if saved.replaced else "Saved"
    st.success(f"{verb} subset '{saved.name}' ({saved.n} samples). Export it from the Export page.")
