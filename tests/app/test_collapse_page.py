"""AppTest and unit tests for the Collapse page."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app import state
from app.components.collapse_panel import HEADLINE, imbalance_note, per_class_frame
from backend.storage import Workspace, results, runs
from tests.app.app_testkit import CLASSES, CURVE_EPOCHS, NEARER_OTHER, add_score_run, metric_values


def collapse_page(app_on, workspace: Path) -> AppTest:
    return app_on(workspace, "views/collapse.py")


def test_collapse_shows_headline_curve_and_per_class(app_on, scored_workspace: Path) -> None:
    at = collapse_page(app_on, scored_workspace)
    assert at.title[0].value == "Neural collapse"
    assert at.selectbox(key=state.COLLAPSE_SOURCE).value == "probe_final"  # the headline source
    shown = metric_values(at)
    assert list(shown)[: len(HEADLINE)] == [label for label, _ in HEADLINE.values()]
    assert "n/a" not in shown.values()  # the probe has a classifier
    captions = " ".join(c.value for c in at.main.caption)
    assert "0 = perfectly collapsed" in captions and "simplex ETF" in captions
    assert not at.warning  # balanced classes: no orthogonal-frame note

    curve, per_class, ratios = at.get("plotly_chart")
    spec = json.loads(curve.proto.spec)
    assert [t["name"] for t in spec["data"]] == ["nc1", "etf_distance", "nc3", "nc4"]
    assert len(spec["data"][0]["y"]) == CURVE_EPOCHS
    assert at.selectbox(key=state.COLLAPSE_CLASS_METRIC).value == "within_between_ratio"
    assert at.dataframe[0].value["class"].tolist() == list(CLASSES)
    # per sample: the two constructed far-off samples first, the count of ratios above 1
    stored = results.read_scores(Workspace.open(scored_workspace), runs.latest_run(
        Workspace.open(scored_workspace), "score")["run_id"]).sort_values("id")
    table = at.dataframe[1].value
    assert table["id"].tolist()[:2] == stored["id"].tolist()[:2]
    assert table["ratio"].tolist()[:2] == pytest.approx(list(NEARER_OTHER))
    assert shown["Nearer another class"] == str(int((stored["nc_distance_ratio"] > 1).sum()))
    assert "nearest-class-mean classifier would pick another" in captions
    (download,) = at.get("download_button")
    assert download.label == "Download JSON"

    at.selectbox(key=state.COLLAPSE_SOURCE).set_value("embeddings").run()
    assert not at.exception
    assert metric_values(at)["NC3"] == "n/a"  # class means only: no classifier


def test_a_run_without_collapse_metrics_says_so(app_on, writable_scored_workspace: Path) -> None:
    add_score_run(Workspace.open(writable_scored_workspace), with_collapse=False)
    at = collapse_page(app_on, writable_scored_workspace)
    assert "stored no neural\\-collapse metrics" in at.info[0].value  # the error's text, escaped for markdown


def test_a_run_without_per_sample_distances_says_how_to_get_them(app_on, writable_scored_workspace: Path) -> None:
    ws = Workspace.open(writable_scored_workspace)
    run_id = runs.latest_run(ws, "score")["run_id"]
    ws.table("scores").delete(f"run_id = '{run_id}' AND name LIKE 'nc_%'")  # as runs scored before them
    at = collapse_page(app_on, writable_scored_workspace)
    assert any("stored no per-sample distances" in c.value for c in at.main.caption)


def test_imbalance_note_compares_the_two_geometries() -> None:
    metrics = {"imbalance_ratio": 3.0, "of_distance": 0.1, "etf_distance": 0.4}
    note = imbalance_note(metrics)
    assert note is not None and "Dang et al. 2023" in note and "orthogonal frame" in note
    assert "0.1" in note and "0.4" in note
    assert imbalance_note({**metrics, "imbalance_ratio": 1.2}) is None
    assert imbalance_note({}) is None


def test_per_class_frame_has_one_row_per_class() -> None:
    frame = per_class_frame({"per_class": {"nc1": {"a": 1.0, "b": 2.0}, "count": {"a": 3, "b": 4}}})
    assert frame.index.tolist() == ["a", "b"] and list(frame.columns) == ["nc1", "count"]
    assert per_class_frame({}).empty


def test_a_row_of_the_per_sample_table_opens_the_sample_view(app_on, scored_workspace) -> None:
    at = app_on(scored_workspace, "views/collapse.py")
    table = at.dataframe[-1].value
    at.session_state["collapse.samples"] = {"selection": {"rows": [0], "columns": []}}
    at.run()
    assert not at.exception, at.exception
    texts = " ".join(m.value for m in at.markdown)
    assert f"**{table['id'].iloc[0]}**" in texts and "Decision history" in texts
