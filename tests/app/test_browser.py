"""One real-browser test: ``thresher app`` on the digits, driven by Playwright in Debian's Chromium.

It checks what AppTest cannot: the WebGL map renders, a box dragged across it comes back to
Python as a selection, the thumbnail grid appears, and saving keeps the selection on screen.
The screenshot lands in ``test-artifacts/explore-selection.png``.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.components.gallery import PAGE_SIZE
from backend.storage import Workspace, subsets
from tests.app.app_testkit import build_digits_workspace

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "test-artifacts" / "explore-selection.png"
SERVER_START_TIMEOUT_S = 90
UI_TIMEOUT_MS = 60_000
SELECTED = re.compile(r"^\d+ selected$")
#: Where the first point of the map's last trace is, in pixels from the plot's corner.
POINT_POSITION = """plot => { const trace = plot._fullData[plot._fullData.length - 1];
    const xaxis = plot._fullLayout.xaxis, yaxis = plot._fullLayout.yaxis;
    return [xaxis.l2p(trace.x[0]) + xaxis._offset, yaxis.l2p(trace.y[0]) + yaxis._offset]; }"""
#: How many points the map draws as selected (``selectedpoints`` over its traces).
HIGHLIGHTED = "plot => plot.data.reduce((n, trace) => n + (trace.selectedpoints || []).length, 0)"
#: True once every thumbnail inside the viewport has decoded (the ones below it may load lazily).
VISIBLE_THUMBNAILS_LOADED = """() => [...document.querySelectorAll('[data-testid="stImage"] img')]
    .filter(img => img.getBoundingClientRect().top < window.innerHeight)
    .every(img => img.complete && img.naturalWidth > 0)"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_healthy(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(
                f"`thresher app` exited with {server.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass  # not listening yet
        time.sleep(0.5)
    pytest.fail(
        f"`thresher app` did not answer within {SERVER_START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}"
    )


def stop(server: subprocess.Popen) -> None:
    """End the server's process group (``thresher app`` runs Streamlit as a child process)."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=15)


@pytest.fixture(scope="module")
def digits_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_digits_workspace(tmp_path_factory.mktemp("browser") / "digits")


@dataclass(frozen=True)
class AppServer:
    url: str
    process: subprocess.Popen  # ``thresher app``, leader of its own process group (Streamlit is a child)


@contextlib.contextmanager
def serving(workspace: Path, log: Path, **env: str) -> Iterator[AppServer]:
    """``thresher app --workspace W`` on a free port (``env``: more environment); stopped on exit
    (also on failure)."""
    port = free_port()
    env = dict(os.environ, STREAMLIT_SERVER_PORT=str(port), STREAMLIT_SERVER_ADDRESS="127.0.0.1",
               STREAMLIT_SERVER_HEADLESS="true", STREAMLIT_BROWSER_GATHER_USAGE_STATS="false", **env)
    command = [sys.executable, "-m", "backend.cli", "app", "--workspace", str(workspace)]
    with log.open("w") as log_file:
        server = subprocess.Popen(command, env=env, cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_healthy(url, server, log)
        yield AppServer(url, server)
    finally:
        stop(server)


@contextlib.contextmanager
def browser_page(url: str, *, height: int = 1900) -> Iterator:
    """A Chromium page (Debian's, headless) opened at ``url``; closed on exit."""
    from playwright import sync_api

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": height})
            page.set_default_timeout(UI_TIMEOUT_MS)
            page.goto(url)
            yield page
        finally:
            browser.close()


@pytest.fixture
def app_url(digits_workspace: Path, tmp_path: Path) -> Iterator[str]:
    """``thresher app --workspace W`` on a free port, stopped when the test ends (also on failure)."""
    with serving(digits_workspace, tmp_path / "server.log") as server:
        yield server.url


def _require_browser() -> None:
    """Skip without Chromium or Playwright, except under ``make test`` (which installs both and
    sets THRESHER_REQUIRE_BROWSER=1): there a missing browser is a failure, never a silent skip."""
    problem = None
    if not CHROMIUM.exists():
        problem = "needs Debian's Chromium: apt-get install -y chromium chromium-driver"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "needs the playwright package (pip install playwright)"
    if problem and os.environ.get("THRESHER_REQUIRE_BROWSER") == "1":
        pytest.fail(problem)
    if problem:
        pytest.skip(problem)


def drag_a_box(page) -> int:
    """Drag a box over the upper middle of the Explore map; returns the "N selected" count."""
    chart = page.locator('[data-testid="stPlotlyChart"]')
    chart.wait_for()
    plot_area = chart.locator(".nsewdrag").first  # plotly's drag layer over the axes
    plot_area.wait_for()
    chart.hover()  # the modebar shows on hover
    chart.locator('.modebar-btn[data-title="Box Select"]').click()
    box = plot_area.bounding_box()
    assert box is not None
    # A box over the upper middle of the map (the 0s, and parts of 4, 6, 9 on the digits).
    page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.02)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.75, box["y"] + box["height"] * 0.45, steps=15)
    page.mouse.up()
    count = page.get_by_text(SELECTED)
    count.wait_for()
    return int(count.inner_text().split()[0])


def test_box_selection_shows_thumbnails_and_saves(app_url: str, digits_workspace: Path) -> None:
    _require_browser()
    with browser_page(f"{app_url}/explore") as page:

        n_selected = drag_a_box(page)
        thumbnails = page.locator('[data-testid="stImage"] img')
        thumbnails.first.wait_for()
        assert n_selected > 0
        assert thumbnails.count() == min(n_selected, PAGE_SIZE)  # the gallery's first page

        page.get_by_label("Save the selection as subset").fill("browser-box")
        page.get_by_role("button", name=re.compile(r"^Save \d+ samples?$")).click()
        page.get_by_text("Saved subset 'browser-box'").wait_for()
        assert (
            page.get_by_text(SELECTED).inner_text() == f"{n_selected} selected"
        )  # selection kept
        thumbnails.first.wait_for()
        page.wait_for_function(VISIBLE_THUMBNAILS_LOADED)

        SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT))
    saved = subsets.subset_ids(Workspace.open(digits_workspace), "browser-box")
    assert len(saved) == n_selected


def test_clear_selection_also_clears_the_box_the_map_drew(app_url: str) -> None:
    """QA: "Clear selection" emptied the panel while the map kept its box and dimmed every point
    outside it, as if the selection were still there."""
    _require_browser()
    with browser_page(f"{app_url}/explore") as page:
        drag_a_box(page)
        chart = page.locator('[data-testid="stPlotlyChart"]')
        assert chart.locator(".selectionlayer path").count() > 0  # the box, as plotly draws it
        page.get_by_role("button", name="Clear selection").click()
        page.get_by_text(SELECTED).wait_for(state="detached")
        chart.locator(".nsewdrag").first.wait_for()  # the map drawn again
        page.wait_for_function("document.querySelectorAll('.selectionlayer path').length === 0")


def test_colouring_keeps_the_selection_and_a_click_finds_similar(app_url: str) -> None:
    """Bug 4 in the browser (a new colouring kept the chart but lost its selection), then a click
    on a point opens its sample view, whose "Find similar" shows the Search page's results."""
    _require_browser()
    with browser_page(f"{app_url}/explore") as page:
        n_selected = drag_a_box(page)

        page.get_by_label("Colour by").click()
        page.get_by_role("option", name="split").click()
        chart = page.locator('[data-testid="stPlotlyChart"]')
        chart.locator(".legendtext", has_text="train").wait_for()  # the map is redrawn
        assert page.get_by_text(SELECTED).inner_text() == f"{n_selected} selected"
        plot = chart.locator(".js-plotly-plot")
        assert plot.evaluate(HIGHLIGHTED) == n_selected  # drawn selected in the new colouring

        # Click the first point of the last trace (its position from plotly's own axes).
        x, y = plot.evaluate(POINT_POSITION)
        frame = plot.bounding_box()
        assert frame is not None
        page.mouse.click(frame["x"] + x, frame["y"] + y)
        dialog = page.get_by_role("dialog")
        dialog.wait_for()
        dialog.get_by_role("button", name="Find similar").click()
        page.get_by_role("heading", name="Search").wait_for()
        page.get_by_text(re.compile(r"^\d+ results$")).wait_for()
        clicked = page.get_by_label("Sample id").input_value()
        assert clicked and page.get_by_text(f"Most similar to sample {clicked}").count() == 1
        page.locator('[data-testid="stImage"] img').first.wait_for()
        page.wait_for_function(VISIBLE_THUMBNAILS_LOADED)
        SCREENSHOT.with_name("search-find-similar.png").parent.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT.with_name("search-find-similar.png")))
