"""What the Explore page shows under the map for a box or lasso selection."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import data, state
from app.components.subset_form import SaveFormKeys, save_subset_form
from app.components.thumbnails import thumbnail_grid

MAX_THUMBNAILS = 60
THUMBNAIL_SIZE = 64
SAVE_KEYS = SaveFormKeys("explore.save_form", state.EXPLORE_SUBSET_NAME, state.EXPLORE_OVERWRITE)


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
    """Explore's save-as-subset form (see :func:`save_subset_form`)."""
    save_subset_form(root, ids, keys=SAVE_KEYS, run_id=run_id)
