"""The projection map: a WebGL scatter built from a points DataFrame, and its selection.

The figure is a pure function of the DataFrame and the colour choice, so it is identical on
every rerun; Streamlit then keeps the chart (and the user's box or lasso selection) in place.
Each point carries ``customdata = [id, label, split]``: the hover shows it and the selection
returns it, so a selection maps back to sample ids without relying on trace order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from app.components.palette import category_colors, natural_order

COLOR_CHOICES = ("label", "split")
#: Above this many categories the legend would be unreadable: one trace, colours by code.
MAX_LEGEND_CATEGORIES = 40
HOVER = "id: %{customdata[0]}<br>label: %{customdata[1]}<br>split: %{customdata[2]}<extra></extra>"


def _customdata(points: pd.DataFrame) -> np.ndarray:
    return points[["id", "label", "split"]].fillna("(none)").astype(str).to_numpy(dtype=object)


def projection_figure(
    points: pd.DataFrame, *, color_by: str = "label", height: int = 640
) -> go.Figure:
    """Scatter of columns x, y (one WebGL trace per category of ``color_by``)."""
    if color_by not in COLOR_CHOICES:
        raise ValueError(f"colour by one of {', '.join(COLOR_CHOICES)}, not {color_by!r}")
    groups = points[color_by].fillna("(none)").astype(str)
    categories = natural_order(groups.unique())
    fig = go.Figure()
    marker = dict(size=6, opacity=0.8)
    if len(categories) <= MAX_LEGEND_CATEGORIES:
        colors = category_colors(categories)
        for category in categories:
            part = points[groups == category]
            fig.add_trace(
                go.Scattergl(
                    x=part["x"].to_numpy(),
                    y=part["y"].to_numpy(),
                    mode="markers",
                    name=category,
                    marker=dict(marker, color=colors[category]),
                    customdata=_customdata(part),
                    hovertemplate=HOVER,
                )
            )
    else:
        codes = pd.Categorical(groups, categories=categories).codes
        fig.add_trace(
            go.Scattergl(
                x=points["x"].to_numpy(),
                y=points["y"].to_numpy(),
                mode="markers",
                name=color_by,
                marker=dict(marker, color=codes, colorscale="Turbo"),
                customdata=_customdata(points),
                hovertemplate=HOVER,
                showlegend=False,
            )
        )
    fig.update_layout(
        height=height,
        dragmode="select",
        legend_title_text=color_by,
        margin=dict(l=10, r=10, t=30, b=10),
        xaxis=dict(showticklabels=False, title=None, zeroline=False),
        yaxis=dict(showticklabels=False, title=None, zeroline=False, scaleanchor="x", scaleratio=1),
    )
    return fig


def selected_ids(selection: Mapping[str, Any] | None, figure: go.Figure) -> list[str]:
    """Sample ids of the selected points, in selection order, without duplicates.

    ``selection`` is the ``selection`` part of ``st.plotly_chart``'s event (a dict with
    ``points``). A point's id is its ``customdata[0]``; when the browser sent no customdata the
    id is looked up in ``figure`` by ``curve_number`` and ``point_index``.
    """
    points: Sequence[Mapping[str, Any]] = (selection or {}).get("points") or []
    ids: dict[str, None] = {}
    for point in points:
        custom = point.get("customdata")
        if custom:
            ids[str(custom[0])] = None
            continue
        curve, index = (
            point.get("curve_number"),
            point.get("point_index", point.get("point_number")),
        )
        if curve is None or index is None or curve >= len(figure.data):
            continue
        ids[str(figure.data[curve].customdata[index][0])] = None
    return list(ids)
