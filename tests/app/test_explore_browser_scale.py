"""The density map in a real browser (Playwright in Debian's Chromium): ``thresher app`` on the
1,797 digits with the point budget lowered to 500 (``THRESHER_MAP_BUDGET``), so the map is a
density image. A lasso dragged with the mouse and a box sent as plotly's own selection event (how
``bench/scale_app.py`` selects) both come back to the server as shapes and select every point
inside; zooming to a small selection draws its points exactly."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.components.density_map import DENSITY_META
from tests.app.test_browser import (
    SELECTED,
    _require_browser,
    browser_page,
    digits_workspace,  # noqa: F401  (a fixture)
    serving,
)

pytestmark = pytest.mark.browser

#: Send a box selection (data coordinates) as plotly's ``plotly_selected`` event: what a drag
#: in Box Select mode makes plotly emit, and what Streamlit's chart turns into ``selection.box``.
EMIT_BOX = """(plot, [x0, x1, y0, y1]) => plot.emit('plotly_selected',
    {points: [], selections: [{type: 'rect', xref: 'x', yref: 'y', x0, x1, y0, y1}]})"""
AXIS_RANGES = "plot => [plot._fullLayout.xaxis.range, plot._fullLayout.yaxis.range]"
DRAWN = "plot => plot.layout.meta"


@pytest.fixture
def density_url(digits_workspace: Path, tmp_path: Path) -> Iterator[str]:  # noqa: F811
    with serving(digits_workspace, tmp_path / "server.log", THRESHER_MAP_BUDGET="500") as server:
        yield server.url


def map_plot(page):
    plot = page.locator(".st-key-explore-map .js-plotly-plot")
    plot.wait_for()
    return plot


def test_a_lasso_and_a_box_on_the_density_map_select_on_the_server(density_url: str) -> None:
    _require_browser()
    with browser_page(f"{density_url}/explore") as page:
        plot = map_plot(page)
        page.get_by_text(re.compile(r"^Density map · 1,797 points")).wait_for()
        assert plot.evaluate(DRAWN) == DENSITY_META
        assert plot.locator(".imagelayer image").count() == 1

        # A lasso with the mouse: the density map opens in lasso mode.
        area = plot.locator(".nsewdrag").first.bounding_box()
        assert area is not None
        corners = [(0.3, 0.3), (0.7, 0.3), (0.7, 0.7), (0.3, 0.7), (0.3, 0.32)]
        page.mouse.move(area["x"] + area["width"] * corners[0][0], area["y"] + area["height"] * corners[0][1])
        page.mouse.down()
        for fx, fy in corners[1:]:
            page.mouse.move(area["x"] + area["width"] * fx, area["y"] + area["height"] * fy, steps=8)
        page.mouse.up()
        lassoed = page.get_by_text(SELECTED)
        lassoed.wait_for()
        assert 0 < int(lassoed.inner_text().split()[0]) < 1797
        page.locator('[data-testid="stImage"] img').first.wait_for()

        # A box over the whole map, sent as plotly's event: every point.
        (x_range, y_range) = plot.evaluate(AXIS_RANGES)
        plot.evaluate(EMIT_BOX, [*x_range, *y_range])
        page.get_by_text("1797 selected", exact=True).wait_for()

        # A small box, then zoom: its points drawn exactly.
        x0, x1 = x_range[0], x_range[0] + (x_range[1] - x_range[0]) * 0.3
        plot.evaluate(EMIT_BOX, [x0, x1, *y_range])
        small = page.get_by_text(SELECTED)
        page.wait_for_function("() => !document.body.innerText.includes('1797 selected')")
        n_small = int(small.inner_text().split()[0])
        assert 0 < n_small <= 500
        page.get_by_role("button", name="Zoom to selection").click()
        page.get_by_text(re.compile(rf"^Exact map · {n_small} of 1,797 points")).wait_for()
        assert map_plot(page).evaluate(DRAWN) != DENSITY_META
