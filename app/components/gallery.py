"""A paged, sortable thumbnail gallery over a DataFrame of samples (an Explore selection, search
results), with the sample view one pick away."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd
import streamlit as st

from app import data
from app.components.sample_view import open_picker
from app.components.thumbnails import thumbnail_grid

PAGE_SIZE = 48
THUMBNAIL_SIZE = 72


def page_count(n_rows: int) -> int:
    return max(1, math.ceil(n_rows / PAGE_SIZE))


def sort_rows(rows: pd.DataFrame, column: str | None, *, descending: bool) -> pd.DataFrame:
    """``rows`` ordered by ``column`` (missing values last, then by id); unchanged for ``None``."""
    if column is None or column not in rows.columns:
        return rows.reset_index(drop=True)
    ordered = rows.sort_values([column, "id"], ascending=[not descending, True], na_position="last",
                               kind="stable")
    return ordered.reset_index(drop=True)


#: Short names for the captions (thumbnails are narrow).
CAPTION_NAMES = {"similarity": "sim", "label_issue_score": "issue"}


def caption(row: pd.Series, shown: Sequence[str]) -> str:
    """The label, then each of ``shown`` that the row has a value for, then the decision when the
    row has one (``7 · sim 0.93 · issue 0.8 · dropped``)."""
    parts = ["(none)" if pd.isna(row["label"]) else str(row["label"])]
    for column in shown:
        value = row.get(column)
        if value is not None and not pd.isna(value):
            name = CAPTION_NAMES.get(column, column)
            parts.append(f"{name} {value:.3g}" if isinstance(value, float) else f"{name} {value}")
    decision = row.get("decision")
    if isinstance(decision, str) and decision:
        parts.append(decision)
    return " · ".join(parts)


def paged_gallery(
    root: str,
    rows: pd.DataFrame,
    *,
    key: str,
    sort_columns: Sequence[str],
    default_sort: str | None = None,
    descending: bool = True,
    shown: Sequence[str] = (),
    score_run: str | None,
    source: str,
) -> pd.DataFrame:
    """``rows`` (id, label, path, ...) sorted by a chosen column, :data:`PAGE_SIZE` thumbnails a
    page, each captioned by :func:`caption`; a picker opens a shown sample's view. Returns the
    rows of the page shown."""
    options = [None, *sort_columns]
    default = options.index(default_sort) if default_sort in options else 0
    n_pages = page_count(len(rows))
    page_key = f"{key}.page"
    if st.session_state.get(page_key, 1) > n_pages:  # a smaller selection than the page shown
        st.session_state[page_key] = n_pages
    with st.container(horizontal=True, vertical_alignment="bottom"):
        column = st.selectbox("Sort by", options, index=default, key=f"{key}.sort",
                              format_func=lambda c: "selection order" if c is None else c)
        down = st.toggle("Highest first", value=descending, key=f"{key}.descending")
        page = st.number_input(f"Page (of {n_pages})", min_value=1, max_value=n_pages, step=1,
                               key=page_key)
    ordered = sort_rows(rows, column, descending=down)
    start = (int(page) - 1) * PAGE_SIZE
    shown_rows = ordered.iloc[start : start + PAGE_SIZE]
    columns = list(dict.fromkeys([*shown, *([column] if column else [])]))
    st.caption(f"Samples {start + 1:,}–{start + len(shown_rows):,} of {len(rows):,}.")
    thumbnail_grid(shown_rows.assign(label=[caption(row, columns) for _, row in shown_rows.iterrows()]),
                   data.thumbnail, size=THUMBNAIL_SIZE)
    open_picker(root, shown_rows["id"].tolist(), score_run=score_run, source=source, key=f"{key}.open")
    return shown_rows
