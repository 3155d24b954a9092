"""The Explore map for any number of points, and what a box or lasso on it selects.

The points in view (after the filters, inside the zoomed region) decide the kind of map: at most
``map_data.MAP_BUDGET`` of them draw as the exact WebGL scatter (:mod:`app.components.selection`,
unchanged: hover, click to open, ids returned by the chart); above it the map is a density image
(:mod:`app.components.density_map`) whose box or lasso is kept as its shapes
(``state.EXPLORE_AREA``) and resolved over every point on the server. "Zoom to selection" then
narrows the view to the selection's bounding box, and draws it exactly once few enough points are
in it. Both kinds sit in one container, ``st.container(key="explore-map")`` (CSS class
``st-key-explore-map``), whose caption says which kind is drawn and how many points it shows.
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np
import pandas as pd
import plotly.io
import streamlit as st

from app import data, explore_data, map_data, state
from app.components import scatter, selection
from app.components.density_map import density_figure
from app.components.markdown_text import md
from app.map_data import MapArea, MapFilter
from app.map_density import Extent
from backend.jobs.health_stage import FLAG_COLUMNS

#: The caption's first words for each kind of map (``bench/scale_app.py`` waits for them).
EXACT_CAPTION, DENSITY_CAPTION = "Exact map", "Density map"


def on_density_select(basis: str, key: str = state.EXPLORE_DENSITY_MAP) -> None:
    """The density chart's callback (``key``: its widget key): a box or lasso replaces the kept
    area (its shapes); an event without one (a double click) clears it. Clicks on the hidden
    selectable layer are ignored."""
    event = st.session_state.get(key) or {}
    area = MapArea.from_selection(event.get("selection"))
    if area is None:
        clear_area()
        return
    st.session_state[state.EXPLORE_AREA] = area
    st.session_state[state.EXPLORE_AREA_BASIS] = basis
    st.session_state[selection.GALLERY_PAGE] = 1


def clear_area() -> None:
    st.session_state.pop(state.EXPLORE_AREA, None)
    st.session_state.pop(state.EXPLORE_AREA_BASIS, None)
    st.session_state[selection.GALLERY_PAGE] = 1


def zoom_to(region: Extent | None) -> None:
    """Show only ``region`` (``None``: the whole map); the selections start afresh there."""
    if region is None:
        st.session_state.pop(state.EXPLORE_ZOOM, None)
    else:
        st.session_state[state.EXPLORE_ZOOM] = region
    clear_area()
    selection.clear_selection()


def show_explore_map(root: str, run_id: str, score_run: str | None, color_by: str, spec: MapFilter) -> None:
    """The map of projection ``run_id`` and, under it, the panel of what is selected on it."""
    points = map_data.map_points(root, run_id)
    zoom = st.session_state.get(state.EXPLORE_ZOOM)
    shown = map_data.filtered_positions(root, run_id, score_run, spec)
    view = map_data.in_view(points, shown, zoom)
    n_view = len(points) if view is None else len(view)
    with st.container(key="explore-map"):
        if n_view <= map_data.MAP_BUDGET:
            frame = _exact_frame(root, run_id, score_run, color_by, points, view)
            basis = selection.figure_basis(frame, color_by)
            highlight = selection.to_highlight(frame, basis)
            selection.show_map(scatter.projection_figure(frame, color_by=color_by, selected=highlight), basis)
            st.caption(f"{EXACT_CAPTION} · {n_view:,} of {len(points):,} points"
                       f"{flag_count(root, run_id, score_run, color_by, view)}")
            ids, panel_points, gallery = selection.kept_selection(frame), frame, None
        else:
            ids, panel_points, gallery = _density_map(root, run_id, score_run, color_by, spec, zoom, view)
    _zoom_controls(zoom, st.session_state.get(state.EXPLORE_AREA) if n_view > map_data.MAP_BUDGET else None)
    selection.open_clicked(root, score_run=score_run)
    selection.selection_panel(root, panel_points, ids, run_id=run_id, score_run=score_run, gallery=gallery,
                              on_clear=clear_area if n_view > map_data.MAP_BUDGET else None)


def flag_count(root: str, run_id: str, score_run: str | None, color_by: str, view: np.ndarray | None) -> str:
    """" · N flagged" among the points in ``view`` (None: all) when the map is coloured by a flag
    (the verdict or a health check), so that a flag with no or few samples says so; else ""."""
    if score_run is None or (color_by != "label_issue" and color_by not in FLAG_COLUMNS):
        return ""
    coloring = map_data.map_coloring(root, run_id, score_run, color_by)
    codes = coloring.codes if view is None else coloring.codes[view]
    return f" · {int((codes == coloring.categories.index(map_data.FLAGGED)).sum()):,} flagged"


def _exact_frame(root: str, run_id: str, score_run: str | None, color_by: str, points: map_data.MapPoints,
                 view: np.ndarray | None) -> pd.DataFrame:
    """The exact scatter's rows: today's DataFrame when the whole map fits the budget (narrowed
    to the view), else one built from the cached arrays for the view's points only."""
    if len(points) <= map_data.MAP_BUDGET:
        frame = explore_data.map_points(root, run_id, score_run, color_by)
        if view is None:
            return frame
        return frame[frame["id"].isin(set(points.ids_at(view)))].reset_index(drop=True)
    coloring = map_data.map_coloring(root, run_id, score_run, color_by)
    assert view is not None  # above the budget only a filter or a zoom makes the view this small
    frame = pd.DataFrame({
        "id": points.ids_at(view), "x": points.x[view], "y": points.y[view],
        "label": np.asarray(points.labels, dtype=object)[points.label_codes[view]],
        "split": np.asarray(points.splits, dtype=object)[points.split_codes[view]],
    })
    frame[color_by] = coloring.values[view] if coloring.numeric else coloring.category_at(view)
    return frame.sort_values("id", kind="stable").reset_index(drop=True)


@data.cached_reader(map_data.filtered_positions, max_entries=8)
def _density_figure_json(root: str, run_id: str, score_run: str | None, color_by: str, spec: MapFilter,
                         zoom: Extent | None) -> str:
    """The density figure as JSON (the image's aggregation and PNG are what cost time)."""
    points = map_data.map_points(root, run_id)
    view = map_data.in_view(points, map_data.filtered_positions(root, run_id, score_run, spec), zoom)
    rows = slice(None) if view is None else view
    extent = zoom or Extent.of_points(points.x[rows], points.y[rows])
    coloring = map_data.map_coloring(root, run_id, score_run, color_by)
    return density_figure(points, coloring, view, extent).to_json()


def _density_map(root: str, run_id: str, score_run: str | None, color_by: str, spec: MapFilter,
                 zoom: Extent | None, view: np.ndarray | None) -> tuple[list[str], pd.DataFrame, pd.DataFrame | None]:
    """Draw the density map of the points in ``view`` (None: all); return (selected ids, their
    id/label rows, their gallery rows)."""
    n_view = len(map_data.map_points(root, run_id)) if view is None else len(view)
    figure_json = _density_figure_json(root, run_id, score_run, color_by, spec, zoom)
    basis = hashlib.blake2b(figure_json.encode(), digest_size=16).hexdigest()
    figure = plotly.io.from_json(figure_json)
    area: MapArea | None = st.session_state.get(state.EXPLORE_AREA)
    if area is not None and st.session_state.get(state.EXPLORE_AREA_BASIS) != basis:
        for kind, xs, ys in area.shapes:  # the chart lost it with its figure: outline it
            path = "M" + "L".join(f"{x},{y}" for x, y in _corners(kind, xs, ys)) + "Z"
            figure.add_shape(type="path", path=path, xref="x", yref="y", line=dict(color="#444", dash="dot"))
    key = selection.map_key(state.EXPLORE_DENSITY_MAP)
    st.plotly_chart(figure, key=key, on_select=functools.partial(on_density_select, basis, key),
                    selection_mode=("box", "lasso"))
    described = "filtered " if spec.active else ""
    st.caption(f"{DENSITY_CAPTION} · {n_view:,} {described}points of {len(map_data.map_points(root, run_id)):,}"
               f" drawn as an image (above {map_data.MAP_BUDGET:,}, the exact map's budget) · colour: {md(color_by)}"
               f"{flag_count(root, run_id, score_run, color_by, view)}. "
               "Box Select or Lasso Select in the modebar selects every point inside; zoom to the selection "
               "to see its points.")
    if area is None:
        return [], pd.DataFrame({"id": [], "label": []}), None
    positions = map_data.area_positions(root, run_id, score_run, spec, zoom, area)
    score_names = tuple(dict.fromkeys(["label_issue_score", color_by]))
    gallery = map_data.selection_rows(root, run_id, score_run, positions, score_names)
    return gallery["id"].tolist(), gallery[["id", "label"]], gallery


def _corners(kind: str, xs: tuple[float, ...], ys: tuple[float, ...]) -> list[tuple[float, float]]:
    if kind == "box":
        (x0, x1), (y0, y1) = sorted(xs[:2]), sorted(ys[:2])
        return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    return list(zip(xs, ys, strict=True))


def _zoom_controls(zoom: Extent | None, area: MapArea | None) -> None:
    """"Zoom to selection" (the kept box or lasso's bounding box) and "Whole map"."""
    if area is None and zoom is None:
        return
    left, right, _ = st.columns([2, 2, 6])
    if area is not None:
        left.button("Zoom to selection", key="explore.zoom_in", on_click=zoom_to, args=(area.bounds(),),
                    help="Show only the selection's bounding box; with at most "
                         f"{map_data.MAP_BUDGET:,} points in it, as exact points you can hover and click.")
    if zoom is not None:
        right.button("Whole map", key="explore.zoom_out", on_click=zoom_to, args=(None,))
