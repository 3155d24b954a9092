"""The Explore map above the point budget: a density image drawn on the server
(:mod:`app.map_density`) as a plotly layout image on the map's data axes, with the same colours,
legend and draw order as the exact scatter (:mod:`app.components.scatter`).

The image is one PNG whatever the number of points, so the browser's cost no longer grows with
them. Plotly only emits a box or lasso selection when some trace has points, so a sparse,
invisible SVG layer of at most :data:`SELECTABLE_POINTS` sampled points lies over the image (no
WebGL context: the density map needs none); the page
reads the selection's shapes (``box`` / ``lasso``), not those points, and resolves the shapes
over every point on the server (``map_data.area_positions``).
"""

from __future__ import annotations

import base64
import io

import numpy as np
import plotly.colors
import plotly.graph_objects as go
from PIL import Image

from app.components.palette import category_colors
from app.components.plot_text import escape
from app.components.scatter import (
    MAX_LEGEND_CATEGORIES,
    NO_VALUE_COLOR,
    fixed_colors,
    on_top_categories,
)
from app.map_data import MapColoring, MapPoints
from app.map_density import Extent, category_image, value_image

#: The image's width in pixels, about the chart's on a laptop screen; its height follows the
#: extent's aspect (square pixels, as the chart's axes keep one scale), within the bounds below.
IMAGE_WIDTH = 800
MIN_HEIGHT, MAX_HEIGHT = 200, 800
SELECTABLE_POINTS = 2_000
#: The figure's ``meta``: what the page's tests and ``bench/scale_app.py`` read to tell the kinds apart.
DENSITY_META = "thresher-density-map"


def _rgb(color: str) -> tuple[int, int, int]:
    """'#rrggbb' or 'rgb(r, g, b)' as three ints."""
    if color.startswith("#"):
        return tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]
    parts = color[color.index("(") + 1:color.index(")")].split(",")
    return tuple(int(round(float(p))) for p in parts[:3])  # type: ignore[return-value]


def category_palette(categories: tuple[str, ...], color_by: str) -> dict[str, str]:
    """The colour of each category, as the exact scatter gives them (fixed colours where a
    category means something; Turbo by code above :data:`MAX_LEGEND_CATEGORIES`)."""
    if len(categories) > MAX_LEGEND_CATEGORIES:
        sampled = plotly.colors.sample_colorscale("Turbo", np.linspace(0, 1, len(categories)).tolist())
        return dict(zip(categories, sampled, strict=True))
    return {**category_colors(list(categories)), **fixed_colors(color_by)}


def _png_uri(rgba: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(buffer, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _lut(scale: str = "Viridis", size: int = 256) -> np.ndarray:
    return np.array([_rgb(c) for c in plotly.colors.sample_colorscale(scale, np.linspace(0, 1, size).tolist())])


def image_size(extent: Extent) -> tuple[int, int]:
    """(width, height) in pixels of the image of ``extent``."""
    aspect = (extent.y1 - extent.y0) / (extent.x1 - extent.x0)
    return IMAGE_WIDTH, int(np.clip(round(IMAGE_WIDTH * aspect), MIN_HEIGHT, MAX_HEIGHT))


def density_image(points: MapPoints, coloring: MapColoring, shown: np.ndarray | None, extent: Extent) -> np.ndarray:
    """(height, width, 4) RGBA (:func:`image_size`) of the ``shown`` positions (``None``: all)."""
    rows = slice(None) if shown is None else shown
    width, height = image_size(extent)
    x, y = points.x[rows], points.y[rows]
    if coloring.numeric:
        values = coloring.values[rows]
        finite = values[np.isfinite(values)]
        value_range = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        return value_image(x, y, values, extent, width, height, lut=_lut(), value_range=value_range,
                           missing_color=_rgb(NO_VALUE_COLOR))
    palette = category_palette(coloring.categories, coloring.column)
    colors = np.array([_rgb(palette[c]) for c in coloring.categories]).reshape(-1, 3)
    on_top = [coloring.categories.index(c) for c in on_top_categories(coloring.column) if c in coloring.categories]
    return category_image(x, y, coloring.codes[rows], colors, extent, width, height, on_top=on_top)


def density_figure(points: MapPoints, coloring: MapColoring, shown: np.ndarray | None, extent: Extent, *,
                   height: int = 640, seed: int = 0) -> go.Figure:
    """The density map of the ``shown`` positions within ``extent``: the image, a legend (or a
    colour bar) and the sparse selectable layer; box and lasso in the modebar."""
    fig = go.Figure()
    fig.add_layout_image(
        source=_png_uri(density_image(points, coloring, shown, extent)), xref="x", yref="y",
        x=extent.x0, y=extent.y1, sizex=extent.x1 - extent.x0, sizey=extent.y1 - extent.y0,
        sizing="stretch", layer="below", opacity=1.0,
    )
    candidates = np.arange(len(points)) if shown is None else shown
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(candidates, min(SELECTABLE_POINTS, len(candidates)), replace=False))
    fig.add_trace(go.Scatter(x=points.x[sample], y=points.y[sample], mode="markers", name="selectable",
                               marker=dict(size=4, opacity=0), hoverinfo="skip", showlegend=False))
    if coloring.numeric:
        values = coloring.values[candidates]
        finite = values[np.isfinite(values)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        fig.add_trace(go.Scatter(
            x=[None], y=[None], mode="markers", name=escape(coloring.column), showlegend=False, hoverinfo="skip",
            marker=dict(color=[low], cmin=low, cmax=high, colorscale="Viridis", showscale=True,
                        colorbar=dict(title=dict(text=escape(coloring.column)), thickness=14)),
        ))
    elif len(coloring.categories) <= MAX_LEGEND_CATEGORIES:
        palette = category_palette(coloring.categories, coloring.column)
        present = np.bincount(coloring.codes[candidates], minlength=len(coloring.categories)) > 0
        for rank, category in enumerate(coloring.categories):
            if present[rank]:
                fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=escape(category),
                                           legendrank=1000 + rank, marker=dict(size=8, color=palette[category]),
                                           hoverinfo="skip"))
    fig.update_layout(
        height=height, dragmode="lasso", meta=DENSITY_META, legend_title_text=escape(coloring.column),
        margin=dict(l=10, r=10, t=30, b=10),
        xaxis=dict(range=[extent.x0, extent.x1], showticklabels=False, title=None, zeroline=False, showgrid=False),
        yaxis=dict(range=[extent.y0, extent.y1], showticklabels=False, title=None, zeroline=False, showgrid=False,
                   scaleanchor="x", scaleratio=1),
    )
    return fig
