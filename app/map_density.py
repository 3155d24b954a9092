"""The geometry of the Explore map at scale: which points a box or a lasso holds, and the map
drawn as an image (per-pixel counts blended by category colour, or a score through a colour
scale), all vectorised with NumPy over the projection's x, y arrays.

Nothing here knows about Streamlit, storage or plotly: arrays in, arrays out, so it is tested
against constructed cases with known answers (``tests/app/test_explore_density.py``).

Image convention: row 0 is the top of the map (the largest y), column 0 its left (the smallest
x); pixel (row, col) covers ``x0 + col * dx <= x < x0 + (col + 1) * dx`` and the matching y band,
the last row and column closed so the extent's maximum falls inside.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: The faintest pixel that holds a point (alpha 0..1); the densest is opaque.
MIN_ALPHA = 0.35


@dataclass(frozen=True)
class Extent:
    """The map's data rectangle: x0 <= x <= x1, y0 <= y <= y1 (x0 < x1, y0 < y1)."""

    x0: float
    x1: float
    y0: float
    y1: float

    @classmethod
    def of_points(cls, x: np.ndarray, y: np.ndarray, *, pad: float = 0.02) -> Extent:
        """The points' bounding box widened by ``pad`` of its size on each side (a side of zero
        size, or no points, becomes one unit wide)."""
        if len(x) == 0:
            return cls(-0.5, 0.5, -0.5, 0.5)
        x_lo, x_hi, y_lo, y_hi = float(np.min(x)), float(np.max(x)), float(np.min(y)), float(np.max(y))
        dx = (x_hi - x_lo) or 1.0
        dy = (y_hi - y_lo) or 1.0
        return cls(x_lo - pad * dx, x_hi + pad * dx, y_lo - pad * dy, y_hi + pad * dy)

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(N,) bool: inside or on the rectangle."""
        return (x >= self.x0) & (x <= self.x1) & (y >= self.y0) & (y <= self.y1)


# --------------------------------------------------------------------------- selections
def points_in_box(x: np.ndarray, y: np.ndarray, x_range: Sequence[float], y_range: Sequence[float]) -> np.ndarray:
    """(N,) bool: the points inside a rectangle or on its sides (the ranges in any order)."""
    x_lo, x_hi = sorted(map(float, x_range))
    y_lo, y_hi = sorted(map(float, y_range))
    return Extent(x_lo, x_hi, y_lo, y_hi).contains(np.asarray(x), np.asarray(y))


def points_in_polygon(x: np.ndarray, y: np.ndarray, polygon_x: Sequence[float], polygon_y: Sequence[float]) -> np.ndarray:
    """(N,) bool: the points inside a simple or self-crossing polygon (even-odd rule), points on
    an edge or a vertex counted inside. The polygon closes itself (last vertex to first).

    Algorithm: a bounding-box prefilter keeps the candidates; they are sorted by y once. A ray
    cast to the left from a point crosses the edge (x1, y1)-(x2, y2) iff ``min(y1, y2) <= y <
    max(y1, y2)`` and the edge passes left of the point; the candidates in that half-open y band
    are one slice of the sorted order (two ``searchsorted``), so each edge costs the points
    level with it, not all N: O(N log N + N * k) for a lasso that a horizontal line crosses k
    times, instead of O(N * V) for V vertices. Horizontal edges cross nothing (an empty band).
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    px, py = np.asarray(polygon_x, dtype=np.float64), np.asarray(polygon_y, dtype=np.float64)
    inside = np.zeros(len(x), dtype=bool)
    if len(px) != len(py):
        raise ValueError(f"the polygon has {len(px)} x and {len(py)} y coordinates")
    if len(px) < 3 or len(x) == 0:
        return inside
    candidates = np.flatnonzero(Extent(px.min(), px.max(), py.min(), py.max()).contains(x, y))
    order = candidates[np.argsort(y[candidates], kind="stable")]
    sx, sy = x[order], y[order]
    odd = np.zeros(len(order), dtype=bool)
    on_edge = np.zeros(len(order), dtype=bool)
    scale = max(float(np.ptp(px)), float(np.ptp(py)), 1.0)
    for x1, y1, x2, y2 in zip(px, py, np.roll(px, -1), np.roll(py, -1), strict=True):
        y_lo, y_hi = (y1, y2) if y1 <= y2 else (y2, y1)
        start, stop = np.searchsorted(sy, y_lo, "left"), np.searchsorted(sy, y_hi, "left")
        if stop > start:  # the half-open band: never a horizontal edge
            band_y = sy[start:stop]
            crossing_x = x1 + (band_y - y1) * (x2 - x1) / (y2 - y1)
            odd[start:stop] ^= sx[start:stop] < crossing_x
        closed_stop = np.searchsorted(sy, y_hi, "right")
        if closed_stop > start:  # points on the segment itself (the closed band)
            bx, by = sx[start:closed_stop], sy[start:closed_stop]
            cross = (x2 - x1) * (by - y1) - (y2 - y1) * (bx - x1)
            length = float(np.hypot(x2 - x1, y2 - y1))
            near = np.abs(cross) <= 1e-9 * scale * max(length, 1e-300)
            on_edge[start:closed_stop] |= near & (bx >= min(x1, x2)) & (bx <= max(x1, x2))
    inside[order] = odd | on_edge
    return inside


# --------------------------------------------------------------------------- the image
def pixel_index(x: np.ndarray, y: np.ndarray, extent: Extent, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(flat pixel index ``row * width + col`` of each point inside ``extent``, (N,) bool inside)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    inside = extent.contains(x, y)
    col = ((x[inside] - extent.x0) * (width / (extent.x1 - extent.x0))).astype(np.int64)
    row = ((extent.y1 - y[inside]) * (height / (extent.y1 - extent.y0))).astype(np.int64)
    np.clip(col, 0, width - 1, out=col)
    np.clip(row, 0, height - 1, out=row)
    return row * width + col, inside


def count_alpha(counts: np.ndarray, *, min_alpha: float = MIN_ALPHA) -> np.ndarray:
    """Opacity 0..1 per pixel from its point count on a log scale: 0 where empty, ``min_alpha``
    for one point, 1 for the densest pixel (so a lone outlier stays visible beside a cluster of
    thousands, which a linear scale would wash out)."""
    counts = np.asarray(counts, dtype=np.float64)
    peak = counts.max() if counts.size else 0.0
    alpha = np.zeros_like(counts)
    if peak <= 0:
        return alpha
    filled = counts > 0
    spread = np.log(counts[filled]) / np.log(peak) if peak > 1 else np.zeros(int(filled.sum()))
    alpha[filled] = min_alpha + (1.0 - min_alpha) * spread
    return alpha


def _rgba(rgb: np.ndarray, alpha: np.ndarray, width: int, height: int) -> np.ndarray:
    image = np.empty((height * width, 4), dtype=np.uint8)
    image[:, :3] = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    image[:, 3] = np.clip(np.rint(alpha * 255), 0, 255).astype(np.uint8)
    return image.reshape(height, width, 4)


def _pixel_counts(x: np.ndarray, y: np.ndarray, extent: Extent, width: int,
                  height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`pixel_index` plus the number of points in each of the ``width * height`` pixels."""
    pixels, inside = pixel_index(x, y, extent, width, height)
    return pixels, inside, np.bincount(pixels, minlength=width * height).astype(np.float64)


def category_image(
    x: np.ndarray,
    y: np.ndarray,
    codes: np.ndarray,
    colors: np.ndarray,
    extent: Extent,
    width: int,
    height: int,
    *,
    on_top: Sequence[int] = (),
) -> np.ndarray:
    """(height, width, 4) uint8 RGBA: each pixel the mean colour of its points (their category
    colours weighted by count, as datashader shades categories), alpha by :func:`count_alpha`.

    ``codes``: (N,) int category of each point, 0..K-1; ``colors``: (K, 3) RGB 0..255.
    ``on_top``: categories drawn over the blend, the last on top, opaque wherever a pixel holds
    one of them (a flagged sample stays visible in a pixel of a thousand unflagged ones).

    Algorithm: one ``bincount`` of points per pixel and three weighted by the points' R, G, B;
    the blend is their ratio. O(N + pixels), no per-category grid.
    """
    codes = np.asarray(codes, dtype=np.int64)
    colors = np.asarray(colors, dtype=np.float64).reshape(-1, 3)
    pixels, inside, counts = _pixel_counts(x, y, extent, width, height)
    kept_codes = codes[inside]
    size = width * height
    point_rgb = colors[kept_codes]
    rgb = np.stack([np.bincount(pixels, weights=point_rgb[:, c], minlength=size) for c in range(3)], axis=1).astype(np.float64)
    rgb /= np.maximum(counts, 1.0)[:, None]
    alpha = count_alpha(counts)
    for category in on_top:
        hit = np.bincount(pixels[kept_codes == category], minlength=size) > 0
        rgb[hit] = colors[category]
        alpha[hit] = 1.0
    return _rgba(rgb, alpha, width, height)


def value_image(
    x: np.ndarray,
    y: np.ndarray,
    values: np.ndarray,
    extent: Extent,
    width: int,
    height: int,
    *,
    lut: np.ndarray,
    value_range: tuple[float, float],
    missing_color: Sequence[int] = (224, 224, 224),
) -> np.ndarray:
    """(height, width, 4) uint8 RGBA of a score: each pixel the largest finite value among its
    points (the small map draws the highest scores on top, so the image shows what it shows)
    through ``lut`` ((L, 3) RGB, low to high) over ``value_range``; pixels with points but no
    finite value get ``missing_color``. Alpha by :func:`count_alpha` of all the pixel's points.
    """
    values = np.asarray(values, dtype=np.float64)
    lut = np.asarray(lut, dtype=np.float64).reshape(-1, 3)
    pixels, inside, counts = _pixel_counts(x, y, extent, width, height)
    kept = values[inside]
    size = width * height
    finite = np.isfinite(kept)
    peak = np.full(size, -np.inf)
    np.maximum.at(peak, pixels[finite], kept[finite])
    scored = np.isfinite(peak)
    low, high = value_range
    fraction = np.clip((peak[scored] - low) / (high - low), 0.0, 1.0) if high > low else np.zeros(int(scored.sum()))
    rgb = np.tile(np.asarray(missing_color, dtype=np.float64), (size, 1))
    rgb[scored] = lut[np.rint(fraction * (len(lut) - 1)).astype(np.int64)]
    return _rgba(rgb, count_alpha(counts), width, height)
