"""The Explore map as a widget, and what the page shows for a box or lasso selection.

The selected ids live in ``st.session_state[state.EXPLORE_SELECTION]``, written by the chart's
``on_select`` callback, not in the chart's own state: a new colouring makes a new figure, which
Streamlit draws as a new chart with an empty selection, and the ids survive it. The figure then
highlights them (``selectedpoints``); on the figure the selection was made on, it does not, so
that figure stays identical and the chart keeps its own box, zoom and drag mode. A click on a
single point opens that sample's view instead.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app import explore_data, state
from app.components import scatter
from app.components.decision_actions import bulk_actions
from app.components.gallery import paged_gallery
from app.components.markdown_text import md
from app.components.sample_view import open_sample
from app.components.subset_form import SaveFormKeys, save_subset_form

SAVE_KEYS = SaveFormKeys("explore.save_form", state.EXPLORE_SUBSET_NAME, state.EXPLORE_OVERWRITE)
GALLERY_PAGE = f"{state.EXPLORE_GALLERY}.page"


def figure_basis(points: pd.DataFrame, color_by: str) -> str:
    """A fingerprint of what the map draws (ids, positions, colouring): equal fingerprints make
    equal figures."""
    drawn = pd.util.hash_pandas_object(points[["id", "x", "y", color_by]], index=False).to_numpy()
    return hashlib.blake2b(drawn.tobytes() + color_by.encode(), digest_size=16).hexdigest()


def map_key(base: str) -> str:
    """A map chart's widget key: ``base``, then the generation "Clear selection" bumps. A chart
    keeps drawing its box or lasso (and dimming the points outside) until its key changes; the
    app cannot set a chart's selection."""
    generation = st.session_state.get(state.EXPLORE_MAP_GENERATION, 0)
    return base if not generation else f"{base}.{generation}"


def on_map_select(basis: str | None = None, key: str = state.EXPLORE_MAP) -> None:
    """The chart's callback (``basis``: the :func:`figure_basis` of the figure it belongs to;
    ``key``: the chart's widget key): a box or lasso replaces the selection; a click on one point
    asks for its sample view (the selection stays); an empty selection (double click) clears it."""
    event = st.session_state.get(key) or {}
    selection = event.get("selection") or {}
    ids = scatter.selected_ids(selection)
    if scatter.is_area_selection(selection) or len(ids) > 1:
        st.session_state[state.EXPLORE_SELECTION] = ids
        st.session_state[state.EXPLORE_SELECTION_BASIS] = basis
        st.session_state[GALLERY_PAGE] = 1
    elif ids:
        st.session_state[state.EXPLORE_CLICKED] = ids[0]
    else:
        clear_selection()


def clear_selection() -> None:
    st.session_state.pop(state.EXPLORE_SELECTION, None)
    st.session_state.pop(state.EXPLORE_SELECTION_BASIS, None)
    st.session_state[GALLERY_PAGE] = 1


def kept_selection(points: pd.DataFrame) -> list[str]:
    """The kept selection, restricted to the samples on this map (in selection order)."""
    kept = st.session_state.get(state.EXPLORE_SELECTION) or []
    present = set(points["id"])
    return [sample_id for sample_id in kept if sample_id in present]


def to_highlight(points: pd.DataFrame, basis: str) -> list[str]:
    """The kept selection when the map shows another figure than the one it was made on (the
    chart there has lost it); none on that figure, whose chart still shows it."""
    if st.session_state.get(state.EXPLORE_SELECTION_BASIS) == basis:
        return []
    return kept_selection(points)


def show_map(figure: go.Figure, basis: str) -> None:
    """The map (``basis``: its :func:`figure_basis`); a click opens a sample, a box or lasso
    (from the modebar) selects."""
    key = map_key(state.EXPLORE_MAP)
    st.plotly_chart(figure, key=key, on_select=functools.partial(on_map_select, basis, key),
                    selection_mode=("points", "box", "lasso"))


def open_clicked(root: str, *, score_run: str | None) -> None:
    """Open the sample view of the point just clicked (once per click)."""
    clicked = st.session_state.pop(state.EXPLORE_CLICKED, None)
    if clicked:
        open_sample(root, clicked, score_run=score_run, source="explore")


def selection_panel(root: str, points: pd.DataFrame, ids: list[str], *, run_id: str | None,
                    score_run: str | None = None, gallery: pd.DataFrame | None = None,
                    on_clear: Callable[[], None] | None = None) -> None:
    """Count and per-label summary of ``ids``, the decision actions, the save-as-subset form and
    the paged gallery (sortable by any score of ``score_run``). ``gallery``: its rows when the
    caller has them (the density map reads them for a selection of any size,
    ``map_data.selection_rows``); ``on_clear``: what "Clear selection" also clears."""
    if not ids:
        st.caption("Click a point to open it. To select samples, pick Box Select or Lasso Select in the "
                   "map's modebar and drag.")
        return
    chosen = points if gallery is not None else points[points["id"].isin(ids)]  # the caller's rows: the selection
    by_label = chosen["label"].fillna("(none)").astype(str).value_counts()
    st.subheader(f"{len(chosen)} selected")
    st.caption("Given labels: " + " · ".join(f"{md(label)}: {n}" for label, n in by_label.items()))
    chosen_ids = chosen["id"].tolist()
    st.button("Clear selection", key="explore.clear", on_click=_clear_all, args=(on_clear,))
    bulk_actions(root, chosen_ids, source="explore", score_run=score_run, key=state.EXPLORE_ACTIONS)
    save_form(root, chosen_ids, run_id=run_id)
    rows = explore_data.gallery_rows(root, chosen_ids, score_run) if gallery is None else gallery
    sort_columns = explore_data.score_columns(rows)
    default = "label_issue_score" if "label_issue_score" in sort_columns else None
    paged_gallery(root, rows, key=state.EXPLORE_GALLERY, sort_columns=sort_columns, default_sort=default,
                  score_run=score_run, source="explore")


def _clear_all(also: Callable[[], None] | None) -> None:
    clear_selection()
    if also is not None:
        also()
    # new chart keys: the charts drop the box they drew (the selection itself is gone already)
    st.session_state[state.EXPLORE_MAP_GENERATION] = st.session_state.get(state.EXPLORE_MAP_GENERATION, 0) + 1


def save_form(root: str, ids: list[str], *, run_id: str | None) -> None:
    """Explore's save-as-subset form (see :func:`save_subset_form`)."""
    save_subset_form(root, ids, keys=SAVE_KEYS, run_id=run_id)
