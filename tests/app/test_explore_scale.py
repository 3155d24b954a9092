"""Explore above the point budget (the budget lowered so the 36-sample test workspace crosses
it): the density map, its colourings, box and lasso resolved on the server, zoom, and the
filters (``app/map_data.py``) checked against pandas on the same rows."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from app import map_data
from app.components import gallery
from app.components.density_map import DENSITY_META
from app.map_data import MapArea, MapFilter
from backend.jobs.health_stage import FLAG_COLUMNS
from backend.storage import Workspace, decisions, results, runs
from tests.app.app_testkit import APP_TIMEOUT_S, CLASSES, N_FLAGGED, N_SAMPLES

EXPLORE = "views/explore.py"


@pytest.fixture
def small_budget(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(map_data, "MAP_BUDGET", 10)
    return 10


def map_spec(at: AppTest) -> dict:
    (chart,) = at.get("plotly_chart")
    return json.loads(chart.proto.spec)


def caption(at: AppTest, start: str) -> str:
    (found,) = [c.value for c in at.caption if c.value.startswith(start)]
    return found


def typed_array(values: list | dict) -> np.ndarray:
    """A trace's coordinates from the chart's JSON, as float32 (plotly writes NumPy arrays as
    ``{"dtype": ..., "bdata": base64}``)."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]).astype(np.float32)
    return np.asarray(values, dtype=np.float32)


def subheaders(at: AppTest) -> list[str]:
    return [s.value for s in at.subheader]


def points_frame(workspace: Path) -> tuple[str, str, pd.DataFrame]:
    """(projection run, score run, id/x/y/label/split/label_issue_score/is_label_issue/el2n)."""
    ws = Workspace.open(workspace)
    run_id = runs.latest_run(ws, "project")["run_id"]
    score_run = runs.latest_run(ws, "score")["run_id"]
    frame = ws.read("projections", columns=["id", "x", "y"], where=f"run_id = '{run_id}'")
    frame = frame.merge(ws.samples(columns=["id", "label", "split"]), on="id")
    frame = frame.merge(results.read_label_issues(ws, score_run)[["id", "label_issue_score", "is_label_issue"]], on="id")
    return run_id, score_run, frame.merge(results.read_scores(ws, score_run)[["id", "el2n"]], on="id")


def test_above_the_budget_the_map_is_a_density_image(app_on, scored_workspace: Path, small_budget: int) -> None:
    at = app_on(scored_workspace)
    at.switch_page(EXPLORE).run()
    assert not at.exception
    spec = map_spec(at)
    assert spec["layout"]["meta"] == DENSITY_META
    (image,) = spec["layout"]["images"]
    assert image["source"].startswith("data:image/png;base64,") and image["xref"] == "x"
    assert f"{N_SAMPLES:,} points of {N_SAMPLES:,}" in caption(at, "Density map")
    legend = [t["name"] for t in spec["data"] if t.get("showlegend") is not False]
    assert legend == list(CLASSES)

    at.selectbox(key="explore.color_by").set_value("label_issue").run()
    legend = [t["name"] for t in map_spec(at)["data"] if t.get("showlegend") is not False]
    assert legend == ["flagged", "not flagged"]
    at.selectbox(key="explore.color_by").set_value("el2n").run()
    assert not at.exception
    (bar,) = [t for t in map_spec(at)["data"] if t.get("marker", {}).get("showscale")]
    assert bar["marker"]["colorscale"]


def test_a_lasso_on_the_density_map_selects_every_point_inside(app_on, scored_workspace: Path,
                                                               small_budget: int) -> None:
    run_id, _, frame = points_frame(scored_workspace)
    middle_x = float(np.median(frame["x"]))
    left = frame[frame["x"] <= middle_x]
    lo_y, hi_y = float(frame["y"].min()) - 1, float(frame["y"].max()) + 1
    lo_x = float(frame["x"].min()) - 1
    lasso = {"x": [lo_x, middle_x, middle_x, lo_x], "y": [lo_y, lo_y, hi_y, hi_y]}  # the left half, edge included
    at = app_on(scored_workspace)
    at.switch_page(EXPLORE)
    at.session_state["explore.area"] = MapArea.from_selection({"lasso": [lasso]})
    at.run()
    assert not at.exception
    assert f"{len(left)} selected" in subheaders(at)
    (grid,) = at.get("image")
    assert len(grid.value) == min(len(left), gallery.PAGE_SIZE)
    assert at.selectbox(key="explore.gallery.sort").value == "label_issue_score"
    assert any(b.label == "Zoom to selection" for b in at.button)

    [b for b in at.button if b.label == "Clear selection"][0].click().run()
    assert not any(s.endswith("selected") for s in subheaders(at))


def test_actions_on_a_density_selection_write_decisions(app_on, writable_scored_workspace: Path,
                                                        small_budget: int) -> None:
    _, _, frame = points_frame(writable_scored_workspace)
    chosen = frame.nsmallest(12, "x")
    box = {"x": [float(chosen["x"].min()), float(chosen["x"].max())], "y": [-1e9, 1e9]}
    at = app_on(writable_scored_workspace)
    at.switch_page(EXPLORE)
    at.session_state["explore.area"] = MapArea.from_selection({"box": [box]})
    at.run()
    assert "12 selected" in subheaders(at)
    at.selectbox(key="explore.actions.action").set_value("unsure").run()
    [b for b in at.button if b.label.startswith("Apply to 12")][0].click().run()
    assert not at.exception
    log = decisions.read_log(Workspace.open(writable_scored_workspace))
    assert sorted(log["sample_id"]) == sorted(chosen["id"]) and set(log["source"]) == {"explore"}


def test_zoom_to_a_selection_draws_its_points_exactly(app_on, scored_workspace: Path, small_budget: int) -> None:
    _, _, frame = points_frame(scored_workspace)
    few = frame.nsmallest(5, "x")
    box = {"x": [float(frame["x"].min()) - 1, float(few["x"].max())], "y": [-1e9, 1e9]}
    at = app_on(scored_workspace)
    at.switch_page(EXPLORE)
    at.session_state["explore.area"] = MapArea.from_selection({"box": [box]})
    at.run()
    [b for b in at.button if b.label == "Zoom to selection"][0].click().run()
    assert not at.exception
    assert caption(at, "Exact map").startswith(f"Exact map · 5 of {N_SAMPLES:,} points")
    traces = map_spec(at)["data"]
    assert {row[0] for t in traces for row in t["customdata"]} == set(few["id"])  # hover and click work there
    [b for b in at.button if b.label == "Whole map"][0].click().run()
    assert map_spec(at)["layout"]["meta"] == DENSITY_META


def test_a_filter_narrows_the_map_and_below_the_budget_it_is_exact(app_on, scored_workspace: Path,
                                                                    small_budget: int) -> None:
    _, _, frame = points_frame(scored_workspace)
    at = app_on(scored_workspace)
    at.switch_page(EXPLORE).run()
    at.multiselect(key="explore.filter.flags").set_value(["label_issue"]).run()
    assert not at.exception
    traces = map_spec(at)["data"]  # N_FLAGGED (6) <= 10: the exact scatter
    assert sorted(row[0] for t in traces for row in t["customdata"]) == sorted(frame.loc[frame["is_label_issue"], "id"])
    assert caption(at, "Exact map").startswith(f"Exact map · {N_FLAGGED} of")
    at.multiselect(key="explore.filter.flags").set_value([]).run()
    at.multiselect(key="explore.filter.splits").set_value(["train"]).run()
    assert f"{int((frame['split'] == 'train').sum()):,} filtered points" in caption(at, "Density map")


def test_a_flag_filter_above_the_budget_redraws_the_density_map_of_the_flagged(
        app_on, scored_workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The 1M case in small: the verdict flags more samples than the budget, so "Flagged by"
    keeps the density map, drawn again over the flagged samples only (a new image, a
    "filtered" caption, the selectable layer among them), and clearing the filter brings back
    the whole map. ``bench/scale_app.py`` measures this step in the browser."""
    monkeypatch.setattr(map_data, "MAP_BUDGET", N_FLAGGED - 1)
    _, _, frame = points_frame(scored_workspace)
    flagged = frame[frame["is_label_issue"]]
    at = app_on(scored_workspace)
    at.switch_page(EXPLORE).run()
    (before,) = map_spec(at)["layout"]["images"]
    box = at.multiselect(key="explore.filter.flags")
    assert box.label == "Flagged by (any of)" and "label issue (flagged or not)" in box.options
    box.set_value(["label_issue"]).run()
    assert not at.exception
    spec = map_spec(at)
    assert spec["layout"]["meta"] == DENSITY_META
    (after,) = spec["layout"]["images"]
    assert after["source"] != before["source"]
    assert caption(at, "Density map").startswith(f"Density map · {N_FLAGGED:,} filtered points of {N_SAMPLES:,}")
    (selectable,) = [t for t in spec["data"] if t.get("name") == "selectable"]
    drawn = set(zip(typed_array(selectable["x"]), typed_array(selectable["y"]), strict=True))
    assert drawn == set(zip(np.float32(flagged["x"]), np.float32(flagged["y"]), strict=True))
    at.multiselect(key="explore.filter.flags").set_value([]).run()
    assert caption(at, "Density map").startswith(f"Density map · {N_SAMPLES:,} points of {N_SAMPLES:,}")
    assert map_spec(at)["layout"]["images"][0]["source"] == before["source"]


def test_small_workspaces_filter_the_exact_map_too(app_on, scored_workspace: Path) -> None:
    _, _, frame = points_frame(scored_workspace)
    at = app_on(scored_workspace)
    at.switch_page(EXPLORE).run()
    at.multiselect(key="explore.filter.labels").set_value(["square"]).run()
    traces = map_spec(at)["data"]
    assert [t["name"] for t in traces] == ["square"]
    assert sorted(row[0] for row in traces[0]["customdata"]) == sorted(frame.loc[frame["label"] == "square", "id"])


def test_filters_match_pandas_on_the_same_rows(writable_scored_workspace: Path) -> None:
    root = str(writable_scored_workspace)
    run_id, score_run, frame = points_frame(writable_scored_workspace)
    ws = Workspace.open(writable_scored_workspace)
    ids = sorted(frame["id"])
    decisions.decide(ws, "drop", ids[:3], source="cli")
    decisions.decide(ws, "tag", ids[2:6], tag="odd", source="cli")
    points = map_data.map_points(root, run_id)
    by_position = pd.DataFrame({"id": points.ids.to_pylist()}).merge(frame, on="id", how="left")

    def shown(spec: MapFilter) -> set[str]:
        positions = map_data.filtered_positions(root, run_id, score_run, spec)
        return set(points.ids_at(positions))

    assert map_data.filtered_positions(root, run_id, score_run, MapFilter()) is None
    expected = by_position[(by_position["label"].isin(["circle", "stripe"])) & (by_position["split"] == "test")]
    assert shown(MapFilter(labels=("circle", "stripe"), splits=("test",))) == set(expected["id"])
    in_range = by_position[by_position["el2n"].between(0.25, 0.75)]
    assert shown(MapFilter(score="el2n", score_range=(0.25, 0.75))) == set(in_range["id"])
    assert shown(MapFilter(flags=("label_issue",), labels=("square",))) == set(
        by_position.loc[by_position["is_label_issue"] & (by_position["label"] == "square"), "id"])
    assert shown(MapFilter(decisions=("dropped",))) == set(ids[:3])
    assert shown(MapFilter(decisions=("none",))) == set(ids[3:])
    assert shown(MapFilter(tags=("odd",))) == set(ids[2:6])
    assert shown(MapFilter(labels=("no such class",))) == set()


def test_health_flags_colour_and_filter_as_categories(writable_scored_workspace: Path) -> None:
    root = str(writable_scored_workspace)
    run_id, _, frame = points_frame(writable_scored_workspace)
    ws = Workspace.open(writable_scored_workspace)
    ids = sorted(frame["id"])
    health_run = runs.start_run(ws, "score", {"scorers": []}, embedding_key=None, seed=0)
    flags = {name: (np.arange(len(ids)) % (k + 3) == 0).astype(float) for k, name in enumerate(FLAG_COLUMNS)}
    flags["is_blurry"][:2] = np.nan  # not checked: no value
    results.write_scores(ws, health_run, ids, {**flags, "outlier_score": np.linspace(0, 1, len(ids))})
    runs.finish_run(ws, health_run, {"health": {"counts": {}}})
    points = map_data.map_points(root, run_id)
    order = [ids.index(i) for i in points.ids.to_pylist()]

    blurry = map_data.map_coloring(root, run_id, health_run, "is_blurry")
    expected = np.where(np.isnan(flags["is_blurry"]), "(none)", np.where(flags["is_blurry"] > 0, "flagged",
                                                                          "not flagged"))
    assert blurry.category_at(np.arange(len(points))).tolist() == expected[order].tolist()
    outlier = map_data.map_coloring(root, run_id, health_run, "outlier_score")
    np.testing.assert_allclose(outlier.values, np.linspace(0, 1, len(ids))[order])
    either = MapFilter(flags=("is_outlier", "is_split_leak"))
    flagged = {i for k, i in enumerate(ids) if flags["is_outlier"][k] > 0 or flags["is_split_leak"][k] > 0}
    assert set(points.ids_at(map_data.filtered_positions(root, run_id, health_run, either))) == flagged


def test_the_exact_map_colours_a_health_flag_as_flagged_or_not(app_on, writable_scored_workspace: Path) -> None:
    ws = Workspace.open(writable_scored_workspace)
    ids = sorted(ws.sample_ids())
    health_run = runs.start_run(ws, "score", {"scorers": []}, embedding_key=None, seed=0)
    results.write_scores(ws, health_run, ids, {"is_outlier": (np.arange(len(ids)) < 4).astype(float)})
    runs.finish_run(ws, health_run, {"health": {"counts": {}}})
    at = app_on(writable_scored_workspace)
    at.switch_page(EXPLORE).run()
    at.selectbox(key="explore.score_run").set_value(health_run).run()
    at.selectbox(key="explore.color_by").set_value("is_outlier").run()
    assert not at.exception
    traces = map_spec(at)["data"]
    assert [(t["name"], len(t["customdata"])) for t in traces] == [("not flagged", len(ids) - 4), ("flagged", 4)]
    assert caption(at, "Exact map").endswith("points · 4 flagged")  # a flag says how many it found
    at.selectbox(key="explore.color_by").set_value("is_split_leak").run()
    assert caption(at, "Exact map").endswith("points · 0 flagged")  # none: said, not an all-grey map only


def density_callback_script(selection: dict | None) -> None:
    import streamlit as st

    from app.components import density_view

    st.session_state["explore.density_map"] = {"selection": selection}
    density_view.on_density_select("figure-1")


def test_the_density_callback_keeps_shapes_and_a_double_click_clears_them() -> None:
    lasso = {"points": [{"customdata": None}], "box": [], "lasso": [{"x": [0, 1, 1], "y": [0, 0, 1]}]}
    at = AppTest.from_function(density_callback_script, kwargs={"selection": lasso}, default_timeout=APP_TIMEOUT_S)
    at.run()
    assert at.session_state["explore.area"] == MapArea((("lasso", (0.0, 1.0, 1.0), (0.0, 0.0, 1.0)),))
    assert at.session_state["explore.area_basis"] == "figure-1"
    cleared = AppTest.from_function(density_callback_script, kwargs={"selection": {"points": [], "box": [],
                                                                                   "lasso": []}},
                                    default_timeout=APP_TIMEOUT_S)
    cleared.session_state["explore.area"] = MapArea((("box", (0.0, 1.0), (0.0, 1.0)),))
    cleared.run()
    assert "explore.area" not in cleared.session_state
