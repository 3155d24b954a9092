"""User text never reaches a plotly chart as markup (issue 15, security 4): a workspace whose
labels, ids and splits are HTML shows them escaped on every page with a chart (Overview,
Explore, Review, Prune, Collapse), still readable, and the map's selection still returns the ids."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from app import state
from app.components import plot_text, scatter
from backend.config import ProjectionSettings
from backend.jobs.ingest_job import ingest
from backend.jobs.project_job import project
from backend.storage import Workspace, decisions
from tests.app.app_testkit import EMBEDDING_KEY, add_pixel_embeddings, add_score_run

LABELS = ('<a href="http://x">click</a>', "<b>bold</b>", '<span style="color:red">red</span>')
SPLITS = ("<i>train</i>", "test")
TAG = "<b>tag</b>"  # tags themselves are letters, digits and _ . : / + - (decisions.py); a figure escapes anyway
MARKUP = ("<a", "<b>", "<i>", "<span")  # none of the app's own chart text uses these tags


@pytest.fixture(scope="module")
def markup_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 samples of three classes named in HTML, one id in HTML too, scored and tagged."""
    base = tmp_path_factory.mktemp("markup")
    rng = np.random.default_rng(0)
    rows = []
    for k, label in enumerate(LABELS):
        for i in range(8):
            pixels = np.clip(rng.normal(60 * k + 40, 20, (8, 8)), 0, 255).astype(np.uint8)
            path = base / "images" / f"{k}-{i}.png"
            path.parent.mkdir(exist_ok=True)
            Image.fromarray(pixels, mode="L").save(path)
            sample_id = "<b>id-0</b>" if (k, i) == (0, 0) else f"s{k}-{i}"
            rows.append({"id": sample_id, "path": str(path), "label": label, "split": SPLITS[i % 2]})
    manifest = base / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    ws = Workspace.open(base / "ws", create=True)
    ingest(ws, manifest)
    add_pixel_embeddings(ws)
    project(ws, ProjectionSettings(method="pca"), embedding_key=EMBEDDING_KEY)
    add_score_run(ws)
    decisions.decide(ws, "tag", ["<b>id-0</b>", "s1-1"], tag="blurry")
    return ws.root


def strings(value: object) -> Iterator[str]:
    """Every string in a plotly figure's JSON (keys too)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, (list, tuple, np.ndarray)):
        for item in value:
            yield from strings(item)


def chart_text(at: AppTest) -> str:
    charts = at.get("plotly_chart")
    assert charts, "no chart on the page"
    return "\n".join(s for chart in charts for s in strings(json.loads(chart.proto.spec)))


def assert_escaped(text: str, *expected: str) -> None:
    found = [m for m in MARKUP if m in text]
    assert not found, f"raw markup {found} in a chart"
    for value in expected:
        assert plot_text.escape(value) in text, value  # shown, readable as the characters


def test_every_chart_shows_user_text_escaped(app_on, markup_workspace: Path) -> None:
    at = app_on(markup_workspace)  # Overview
    assert not at.exception
    assert_escaped(chart_text(at), *LABELS)
    at.toggle(key=state.OVERVIEW_STACK_BY_SPLIT).set_value(True).run()
    assert_escaped(chart_text(at), *LABELS, *SPLITS)

    at.switch_page("views/explore.py").run()
    assert not at.exception
    assert_escaped(chart_text(at), *LABELS, "<b>id-0</b>")  # legend and hover
    for colouring in ("split", "tag:blurry", "decision", "label_issue", "el2n"):
        at.selectbox(key=state.EXPLORE_COLOR).set_value(colouring).run()
        assert not at.exception, colouring
        assert_escaped(chart_text(at), "<b>id-0</b>", *LABELS)

    at.switch_page("views/review.py").run()
    at.session_state[state.REVIEW_VIEW] = "Table"
    at.run()
    assert not at.exception
    assert_escaped(chart_text(at), *LABELS)

    at.switch_page("views/prune.py").run()
    at.text_input(key=state.PRUNE_SUBSET_NAME).input("kept")
    at.button(key="prune.run").click().run()
    assert not at.exception and "Saved subset 'kept'" in at.success[0].value
    assert_escaped(chart_text(at), *LABELS)

    at.switch_page("views/collapse.py").run()
    assert not at.exception
    assert_escaped(chart_text(at), *LABELS)


def test_the_tag_colouring_and_the_selection_round_trip(markup_workspace: Path) -> None:
    points = pd.DataFrame({"id": ["<b>id-0</b>", "a&b", "$x$"], "x": [0.0, 1.0, 2.0], "y": [0.0, 1.0, 2.0],
                           "label": list(LABELS), "split": ["<i>train</i>", "test", "test"],
                           f"tag:{TAG}": ["tagged", "not tagged", "tagged"]})
    figure = scatter.projection_figure(points, color_by=f"tag:{TAG}")
    text = "\n".join(strings(figure.to_plotly_json()))
    assert_escaped(text, *LABELS, "<i>train</i>", "<b>id-0</b>", f"tag:{TAG}")
    assert "&#36;x&#36;" in text and "a&amp;b" in text
    picked = [{"customdata": list(row)} for trace in figure.data for row in trace.customdata]
    assert sorted(scatter.selected_ids({"points": picked})) == sorted(points["id"])


@pytest.mark.parametrize("text", ["plain", "<b>x</b>", "a & b", "&amp;", "&#36;", "$1$", "<>&$;#", "50%", ""])
def test_escape_is_one_to_one(text: str) -> None:
    escaped = plot_text.escape(text)
    assert "<" not in escaped and ">" not in escaped and "$" not in escaped
    assert plot_text.unescape(escaped) == text
    assert plot_text.escape_column(pd.Series([text, "ok"])).tolist() == [escaped, "ok"]
