"""The projection map: a WebGL scatter built from a points DataFrame, and its selection.

The figure is a pure function of the DataFrame, the colour choice and the selected ids, so it
is identical on every rerun; Streamlit then keeps the chart in place. Each point carries
``customdata = [id, label, split]``: the hover shows it and the selection returns it, so a
selection maps back to sample ids without relying on trace order. Every user string in the
figure (ids, labels, splits, categories, the colouring's name) is escaped
(:mod:`app.components.plot_text`), and a returned id unescaped.

Plotly draws traces in order, and the points of a trace in row order: the categories that matter
(flagged samples, decisions, a tag) are the last traces, and on a score scale the rows are sorted
so the highest values are drawn last, on top.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from app.components.palette import category_colors, natural_order
from app.components.plot_text import escape, escape_column, template_text, unescape
from backend.jobs.health_stage import FLAG_COLUMNS

COLOR_CHOICES = ("label", "split")
#: Colourings that are categories; any other (numeric) column gets a continuous colour scale.
CATEGORICAL = ("label", "current_label", "split", "label_issue", "suggested_label", "decision", *FLAG_COLUMNS)
#: A colouring by one tag: column ``tag:<name>``, values :data:`TAGGED` / "not tagged".
TAG_PREFIX = "tag:"
TAGGED = "tagged"
#: Fixed colours where the category means something (a flagged sample is red everywhere).
FIXED_COLORS = {
    "label_issue": {"flagged": "#d62728", "not flagged": "#c7c7c7", "(none)": "#eeeeee"},
    "decision": {"none": "#c7c7c7", "kept": "#2ca02c", "relabeled": "#1f77b4", "unsure": "#ff7f0e",
                 "dropped": "#d62728", "(none)": "#eeeeee"},
    TAG_PREFIX: {TAGGED: "#9467bd", "not tagged": "#c7c7c7", "(none)": "#eeeeee"},
}
#: Categories drawn after (over) the others, the last on top; the legend keeps the natural order.
ON_TOP = {
    "label_issue": ("flagged",),
    "decision": ("unsure", "kept", "relabeled", "dropped"),
    TAG_PREFIX: (TAGGED,),
}
NO_VALUE_COLOR = "#e0e0e0"
#: Above this many categories the legend would be unreadable: one trace, colours by code.
MAX_LEGEND_CATEGORIES = 40
HOVER = "id: %{customdata[0]}<br>label: %{customdata[1]}<br>split: %{customdata[2]}<extra></extra>"


def _customdata(points: pd.DataFrame) -> np.ndarray:
    """id, label, split of each point, escaped (:mod:`app.components.plot_text`): the hover shows them."""
    shown = points[["id", "label", "split"]].fillna("(none)")
    return shown.apply(escape_column).to_numpy(dtype=object)


def _family(color_by: str) -> str:
    """The key of :data:`FIXED_COLORS` / :data:`ON_TOP` for ``color_by`` (every tag shares one;
    a health flag is drawn as the label-issue verdict is)."""
    if color_by in FLAG_COLUMNS:
        return "label_issue"
    return TAG_PREFIX if color_by.startswith(TAG_PREFIX) else color_by


def fixed_colors(color_by: str) -> dict[str, str]:
    """The colours :data:`FIXED_COLORS` fixes for ``color_by``'s categories (none for most)."""
    return FIXED_COLORS.get(_family(color_by), {})


def on_top_categories(color_by: str) -> tuple[str, ...]:
    """The categories drawn over the others for ``color_by``, the last on top (:data:`ON_TOP`)."""
    return ON_TOP.get(_family(color_by), ())


def draw_order(categories: Sequence[str], color_by: str) -> list[str]:
    """``categories`` in the order their traces are drawn: those of :data:`ON_TOP` last."""
    on_top = [c for c in on_top_categories(color_by) if c in categories]
    return [c for c in categories if c not in on_top] + on_top


def _selected_points(part: pd.DataFrame, selected: frozenset[str] | None) -> dict:
    """``selectedpoints`` of one trace: the positions of its selected ids (none: no highlight)."""
    if not selected:
        return {}
    return {"selectedpoints": np.flatnonzero(part["id"].isin(selected).to_numpy()).tolist()}


def projection_figure(
    points: pd.DataFrame,
    *,
    color_by: str = "label",
    height: int = 640,
    selected: Sequence[str] | None = None,
) -> go.Figure:
    """Scatter of columns x, y: one WebGL trace per category of ``color_by``, or for a numeric
    column (a score) one trace on a continuous scale plus a grey one for samples without a value.

    ``selected`` ids are drawn highlighted (plotly's ``selectedpoints``) and the rest dimmed, so
    a selection shows whatever the colouring."""
    if color_by not in points.columns:
        raise ValueError(f"no column {color_by!r} to colour by; have {', '.join(points.columns)}")
    fig = go.Figure()
    marker = dict(size=6, opacity=0.8)
    chosen = frozenset(selected) if selected else None
    if color_by not in CATEGORICAL and pd.api.types.is_numeric_dtype(points[color_by]):
        _add_continuous(fig, points, color_by, marker, chosen)
        return _layout(fig, color_by, height)
    groups = points[color_by].fillna("(none)").astype(str)
    categories = natural_order(groups.unique())
    if len(categories) <= MAX_LEGEND_CATEGORIES:
        colors = {**category_colors(categories), **fixed_colors(color_by)}
        legend_rank = {category: rank for rank, category in enumerate(categories)}
        for category in draw_order(categories, color_by):
            part = points[groups == category]
            fig.add_trace(
                go.Scattergl(
                    x=part["x"].to_numpy(),
                    y=part["y"].to_numpy(),
                    mode="markers",
                    name=escape(category),
                    legendrank=1000 + legend_rank[category],
                    marker=dict(marker, color=colors[category]),
                    customdata=_customdata(part),
                    hovertemplate=HOVER,
                    **_selected_points(part, chosen),
                )
            )
    else:
        codes = pd.Categorical(groups, categories=categories).codes
        fig.add_trace(
            go.Scattergl(
                x=points["x"].to_numpy(),
                y=points["y"].to_numpy(),
                mode="markers",
                name=escape(color_by),
                marker=dict(marker, color=codes, colorscale="Turbo"),
                customdata=_customdata(points),
                hovertemplate=HOVER,
                showlegend=False,
                **_selected_points(points, chosen),
            )
        )
    return _layout(fig, color_by, height)


def _add_continuous(
    fig: go.Figure, points: pd.DataFrame, color_by: str, marker: dict, chosen: frozenset[str] | None
) -> None:
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
                **_selected_points(missing, chosen),
            )
        )
    order = np.argsort(values[known], kind="stable")  # the highest values drawn last, on top
    scored = points[known].iloc[order]
    fig.add_trace(
        go.Scattergl(
            x=scored["x"].to_numpy(),
            y=scored["y"].to_numpy(),
            mode="markers",
            name=escape(color_by),
            marker=dict(
                marker,
                color=values[known][order],
                colorscale="Viridis",
                colorbar=dict(title=dict(text=escape(color_by)), thickness=14),
            ),
            customdata=_customdata(scored),
            hovertemplate=HOVER.replace("<extra>", f"<br>{template_text(color_by)}: %{{marker.color:.3g}}<extra>"),
            showlegend=False,
            **_selected_points(scored, chosen),
        )
    )


def _layout(fig: go.Figure, color_by: str, height: int) -> go.Figure:
    fig.update_layout(
        height=height,
        dragmode="zoom",  # a click selects a point only outside box / lasso mode (Streamlit's clickmode)
        legend_title_text=escape(color_by),
        margin=dict(l=10, r=10, t=30, b=10),
        xaxis=dict(showticklabels=False, title=None, zeroline=False),
        yaxis=dict(showticklabels=False, title=None, zeroline=False, scaleanchor="x", scaleratio=1),
    )
    return fig


def selected_ids(selection: Mapping[str, Any] | None) -> list[str]:
    """Sample ids of the selected points, in selection order, without duplicates.

    ``selection`` is the ``selection`` part of ``st.plotly_chart``'s event (a dict with
    ``points``); a point's id is its ``customdata[0]`` (the browser sends each point's customdata).
    """
    points: Sequence[Mapping[str, Any]] = (selection or {}).get("points") or []
    ids = {unescape(str(point["customdata"][0])): None for point in points if point.get("customdata")}
    return list(ids)


def is_area_selection(selection: Mapping[str, Any] | None) -> bool:
    """Whether ``selection`` came from a box or a lasso (not from clicking points)."""
    return bool((selection or {}).get("box") or (selection or {}).get("lasso"))
