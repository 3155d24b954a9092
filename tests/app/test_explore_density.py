"""The Explore map's geometry at scale (:mod:`app.map_density`): point-in-polygon and the
density image, on constructed cases with known answers and against a slow reference."""

from __future__ import annotations

import numpy as np
import pytest

from app.map_density import (
    Extent,
    category_image,
    count_alpha,
    pixel_index,
    points_in_box,
    points_in_polygon,
    value_image,
)

SQUARE = ([0.0, 2.0, 2.0, 0.0], [0.0, 0.0, 2.0, 2.0])
#: A "U": the notch 1 < x < 2, y > 1 is outside.
U_SHAPE = ([0.0, 3.0, 3.0, 2.0, 2.0, 1.0, 1.0, 0.0], [0.0, 0.0, 3.0, 3.0, 1.0, 1.0, 3.0, 3.0])


def reference_in_polygon(x: float, y: float, px: list[float], py: list[float]) -> bool:
    """The textbook even-odd ray cast, one point at a time (edges count as inside)."""
    inside = False
    n = len(px)
    for i in range(n):
        x1, y1, x2, y2 = px[i], py[i], px[(i + 1) % n], py[(i + 1) % n]
        cross = (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1)
        if abs(cross) < 1e-12 and min(x1, x2) <= x <= max(x1, x2) and min(y1, y2) <= y <= max(y1, y2):
            return True
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def test_a_square_holds_its_interior_and_its_edges() -> None:
    x = np.array([1.0, 0.5, 3.0, -0.1, 1.0, 2.0, 0.0, 2.0, 1.0])
    y = np.array([1.0, 1.9, 1.0, 1.0, 0.0, 1.0, 0.0, 2.0, 2.0001])
    expected = [True, True, False, False, True, True, True, True, False]  # edges and corners inside
    assert points_in_polygon(x, y, *SQUARE).tolist() == expected


def test_a_concave_polygon_leaves_its_notch_out() -> None:
    x = np.array([0.5, 1.5, 2.5, 1.5, 1.5, 1.0, 2.0])
    y = np.array([2.5, 2.5, 2.5, 0.5, 1.0, 2.0, 3.0])
    #            left arm, notch, right arm, base, notch floor (edge), notch wall (edge), top of the right arm
    assert points_in_polygon(x, y, *U_SHAPE).tolist() == [True, False, True, True, True, True, True]


def test_it_matches_the_one_point_reference_on_random_polygons() -> None:
    rng = np.random.default_rng(3)
    for _ in range(5):
        angles = np.sort(rng.uniform(0, 2 * np.pi, 12))
        radii = rng.uniform(0.3, 1.0, 12)
        px, py = (radii * np.cos(angles)).tolist(), (radii * np.sin(angles)).tolist()
        x, y = rng.uniform(-1.1, 1.1, 400), rng.uniform(-1.1, 1.1, 400)
        expected = [reference_in_polygon(a, b, px, py) for a, b in zip(x, y, strict=True)]
        assert points_in_polygon(x, y, px, py).tolist() == expected


def test_a_self_crossing_lasso_follows_the_even_odd_rule() -> None:
    bowtie = ([0.0, 2.0, 2.0, 0.0], [0.0, 2.0, 0.0, 2.0])  # two triangles meeting at (1, 1)
    x, y = np.array([0.2, 1.8, 1.0, 1.0]), np.array([1.0, 1.0, 0.2, 1.8])
    assert points_in_polygon(x, y, *bowtie).tolist() == [True, True, False, False]


def test_empty_inputs_and_degenerate_polygons_select_nothing() -> None:
    assert points_in_polygon(np.array([]), np.array([]), *SQUARE).tolist() == []
    assert not points_in_polygon(np.array([1.0]), np.array([1.0]), [0.0, 2.0], [0.0, 2.0]).any()
    with pytest.raises(ValueError, match="3 x and 2 y"):
        points_in_polygon(np.array([1.0]), np.array([1.0]), [0.0, 1.0, 2.0], [0.0, 1.0])


def test_a_box_is_inclusive_and_takes_its_corners_in_any_order() -> None:
    x, y = np.array([0.0, 1.0, 2.0, 1.0]), np.array([0.0, 1.0, 1.0, 3.0])
    assert points_in_box(x, y, [2.0, 0.0], [1.0, 0.0]).tolist() == [True, True, True, False]


def test_pixels_put_the_largest_y_on_the_top_row() -> None:
    extent = Extent(0.0, 4.0, 0.0, 2.0)
    x, y = np.array([0.0, 3.99, 4.0, 1.0, 5.0]), np.array([2.0, 0.0, 0.0, 1.5, 1.0])
    pixels, inside = pixel_index(x, y, extent, width=4, height=2)
    assert inside.tolist() == [True, True, True, True, False]
    assert pixels.tolist() == [0 * 4 + 0, 1 * 4 + 3, 1 * 4 + 3, 0 * 4 + 1]


def test_count_alpha_is_log_scaled_between_the_floor_and_one() -> None:
    alpha = count_alpha(np.array([0, 1, 10, 100]), min_alpha=0.2)
    np.testing.assert_allclose(alpha, [0.0, 0.2, 0.6, 1.0])
    assert count_alpha(np.zeros(3)).tolist() == [0.0, 0.0, 0.0]


def test_a_category_image_blends_colours_by_count_and_keeps_the_on_top_ones() -> None:
    extent = Extent(0.0, 2.0, 0.0, 1.0)
    colors = np.array([[255, 0, 0], [0, 0, 255], [0, 255, 0]])
    # left pixel: three red, one blue; right pixel: 99 red and one green (drawn on top)
    x = np.array([0.5] * 4 + [1.5] * 100)
    y = np.full(len(x), 0.5)
    codes = np.array([0, 0, 0, 1] + [0] * 99 + [2])
    image = category_image(x, y, codes, colors, extent, width=2, height=1, on_top=[2])
    assert image.shape == (1, 2, 4) and image.dtype == np.uint8
    np.testing.assert_array_equal(image[0, 0, :3], [191, 0, 64])  # (3 * 255 + 0) / 4, (0 + 255) / 4
    np.testing.assert_array_equal(image[0, 1], [0, 255, 0, 255])
    assert 0 < image[0, 0, 3] < 255
    empty = category_image(np.array([]), np.array([]), np.array([], int), colors, extent, 2, 1)
    assert (empty[..., 3] == 0).all()


def test_a_value_image_shows_each_pixels_largest_score_and_greys_missing_ones() -> None:
    extent = Extent(0.0, 3.0, 0.0, 1.0)
    lut = np.array([[0, 0, 0], [128, 128, 128], [255, 255, 255]])
    x, y = np.array([0.5, 0.5, 1.5, 2.5]), np.full(4, 0.5)
    values = np.array([0.0, 1.0, np.nan, 0.5])
    image = value_image(x, y, values, extent, 3, 1, lut=lut, value_range=(0.0, 1.0), missing_color=(9, 9, 9))
    np.testing.assert_array_equal(image[0, :, :3], [[255, 255, 255], [9, 9, 9], [128, 128, 128]])
    assert (image[0, :, 3] > 0).all()
