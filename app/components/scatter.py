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
#: Colourings that are categories; any other (numeric) column gets a continuous colour scale.
CATEGORICAL = ("label", "split", "label_issue", "suggested_label")
#: Fixed colours where the category means something (a flagged sample is red everywhere).
FIXED_COLORS = {
    "label_issue": {"flagged": "#d62728", "not flagged": "#c7c7c7", "(none)": "#eeeeee"},
}
NO_VALUE_COLOR = "#e0e0e0"
#: Above this many categories the legend would be unreadable: one trace, colours by code.
MAX_LEGEND_CATEGORIES = 40
HOVER = "id: %{customdata[0]}<br>label: %{customdata[1]}<br>split: %{customdata[2]}<extra></extra>"


def _customdata(points: pd.DataFrame) -> np.ndarray:
    return points[["id", "label", "split"]].fillna("(none)").astype(str).to_numpy(dtype=object)


def projection_figure(
    points: pd.DataFrame, *, color_by: str = "label", height: int = 640
) -> go.Figure:
    """Scatter of columns x, y: one WebGL trace per category of ``color_by``, or for a numeric
    column (a score) one trace on a continuous scale plus a grey one for samples without a value."""
    if color_by not in points.columns:
        raise ValueError(f"no column {color_by!r} to colour by; have {', '.join(points.columns)}")
    fig = go.Figure()
    marker = dict(size=6, opacity=0.8)
    if color_by not in CATEGORICAL and pd.api.types.is_numeric_dtype(points[color_by]):
        _add_continuous(fig, points, color_by, marker)
        return _layout(fig, color_by, height)
    groups = points[color_by].fillna("(none)").astype(str)
    categories = natural_order(groups.unique())
    if len(categories) <= MAX_LEGEND_CATEGORIES:
        colors = {**category_colors(categories), **FIXED_COLORS.get(color_by, {})}
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
    return _layout(fig, color_by, height)


def _add_continuous(fig: go.Figure, points: pd.DataFrame, color_by: str, marker: dict) -> None:
    values = points[color_by].astype(float).to_numpy()
    known = np.isfinite(values)
    if not known.all():
        missing = points[~known]
        fig.add_trace(
            go.Scattergl(
                x=missing["x"].to_numpy(),
                y=missing["y"].to_numpy(),
                mode="markers",
                name="(no value)",
                marker=dict(marker, color=NO_VALUE_COLOR),
                customdata=_customdata(missing),
                hovertemplate=HOVER,
            )
        )
    scored = points[known]
    fig.add_trace(
        go.Scattergl(
            x=scored["x"].to_numpy(),
            y=scored["y"].to_numpy(),
            mode="markers",
            name=color_by,
            marker=dict(
                marker,
                color=values[known],
                colorscale="Viridis",
                colorbar=dict(title=dict(text=color_by), thickness=14),
            ),
            customdata=_customdata(scored),
            hovertemplate=HOVER.replace("<extra>", f"<br>{color_by}: %{{marker.color:.3g}}<extra>"),
            showlegend=False,
        )
    )


def _layout(fig: go.Figure, color_by: str, height: int) -> go.Figure:
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
