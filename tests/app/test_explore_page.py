"""AppTest and unit tests for the Explore page: the map, the selection and saving it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from streamlit.testing.v1 import AppTest

from app.components.scatter import projection_figure, selected_ids
from backend.config import ProjectionSettings
from backend.jobs.project_job import project
from backend.storage import Workspace, runs, subsets
from tests.app.app_testkit import APP_TIMEOUT_S, CLASSES, EMBEDDING_KEY, N_FLAGGED, N_SAMPLES


def map_spec(at: AppTest) -> dict:
    (chart,) = at.get("plotly_chart")
    return json.loads(chart.proto.spec)


def test_explore_shows_a_webgl_map_coloured_by_label(app_on, app_workspace: Path) -> None:
    at = app_on(app_workspace)
    at.switch_page("views/explore.py").run()
    assert not at.exception
    traces = map_spec(at)["data"]
    assert {t["type"] for t in traces} == {"scattergl"}
    assert [t["name"] for t in traces] == list(CLASSES)
    assert sum(len(t["customdata"]) for t in traces) == N_SAMPLES  # x, y are typed arrays
    assert "id: %{customdata[0]}" in traces[0]["hovertemplate"]
    assert any("Drag a box or a lasso" in c.value for c in at.main.caption)

    at.selectbox(key="explore.color_by").set_value("split").run()
    assert not at.exception
    assert sorted(t["name"] for t in map_spec(at)["data"]) == ["test", "train"]


def test_explore_colours_by_the_latest_score_run(app_on, scored_workspace: Path) -> None:
    at = app_on(scored_workspace)
    at.switch_page("views/explore.py").run()
    colour = at.selectbox(key="explore.color_by")
    assert colour.options[:4] == [
        "label",
        "split",
        "label issue (flagged or not)",
        "label-issue score",
    ]
    assert "score: el2n" in colour.options

    colour.set_value("label_issue").run()
    assert not at.exception
    traces = map_spec(at)["data"]
    assert {t["name"]: len(t["customdata"]) for t in traces} == {
        "flagged": N_FLAGGED,
        "not flagged": N_SAMPLES - N_FLAGGED,
    }
    at.selectbox(key="explore.color_by").set_value("el2n").run()
    (trace,) = map_spec(at)["data"]
    assert trace["marker"]["colorscale"] and len(trace["customdata"]) == N_SAMPLES
    assert "el2n: %{marker.color" in trace["hovertemplate"]


def test_a_score_without_values_is_grey() -> None:
    points = pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "x": [0.0, 1.0, 2.0],
            "y": [1.0, 0.0, 2.0],
            "label": ["p", "q", "p"],
            "split": "",
            "aum": [0.5, None, 1.5],
        }
    )
    missing, scored = projection_figure(points, color_by="aum").data
    assert missing.name == "(no value)" and list(missing.customdata[:, 0]) == ["b"]
    assert list(scored.marker.color) == [0.5, 1.5]


def test_explore_defaults_to_the_latest_projection(app_on, writable_workspace: Path) -> None:
    ws = Workspace.open(writable_workspace)
    newest = project(ws, ProjectionSettings(method="pca", seed=1), embedding_key=EMBEDDING_KEY)
    at = app_on(writable_workspace)
    at.switch_page("views/explore.py").run()
    run_box = at.selectbox(key="explore.run_id")
    assert run_box.value == newest.run_id
    assert len(run_box.options) == 2


def test_figure_is_identical_across_reruns() -> None:
    """Streamlit keeps a chart's selection only while its spec is unchanged."""
    points = pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "x": [0.0, 1.0, 2.0],
            "y": [1.0, 0.0, 2.0],
            "label": ["10", "2", None],
            "split": ["train", "", "test"],
            "path": [None, None, None],
        }
    )
    first = projection_figure(points, color_by="label")
    assert first.to_json() == projection_figure(points.copy(), color_by="label").to_json()
    assert [t.name for t in first.data] == ["2", "10", "(none)"]  # natural order


def test_selected_ids_from_customdata_or_point_index() -> None:
    points = pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "x": [0.0, 1, 2],
            "y": [0.0, 1, 2],
            "label": ["p", "q", "p"],
            "split": "",
        }
    )
    figure = projection_figure(points, color_by="label")  # trace 0: a, c; trace 1: b
    selection = {
        "points": [
            {"curve_number": 1, "point_index": 0, "customdata": ["b", "q", ""]},
            {"curve_number": 0, "point_index": 1},  # no customdata: looked up in the figure
            {"curve_number": 1, "point_index": 0, "customdata": ["b", "q", ""]},  # duplicate
        ]
    }
    assert selected_ids(selection, figure) == ["b", "c"]
    assert selected_ids({"points": []}, figure) == []
    assert selected_ids(None, figure) == []


def selection_script(root: str, ids: list[str], run_id: str) -> None:
    """The selection panel alone, as if the map had returned ``ids`` (AppTest cannot drag)."""
    from app import data
    from app.components.selection import selection_panel

    selection_panel(root, data.projection_points(root, run_id), ids, run_id=run_id)


def selection_app(workspace: Path, ids: list[str]) -> AppTest:
    run_id = runs.latest_run(Workspace.open(workspace), "project")["run_id"]
    kwargs = {"root": str(workspace), "ids": ids, "run_id": run_id}
    return AppTest.from_function(selection_script, kwargs=kwargs, default_timeout=APP_TIMEOUT_S)


def test_selection_shows_thumbnails_and_saves_a_subset(writable_workspace: Path) -> None:
    ws = Workspace.open(writable_workspace)
    ids = sorted(ws.sample_ids())[:5]
    at = selection_app(writable_workspace, ids).run()
    assert not at.exception
    assert at.subheader[0].value == "5 selected"
    (grid,) = at.get("image")
    assert len(grid.value) == 5
    assert set(grid.captions) <= set(CLASSES)

    at.text_input(key="explore.subset_name").input("picked")
    at.button[0].click().run()
    assert not at.exception
    assert "Saved subset 'picked' (5 samples)" in at.success[0].value
    assert sorted(subsets.subset_ids(ws, "picked")) == ids


def test_saving_over_an_existing_name_needs_the_overwrite_box(writable_workspace: Path) -> None:
    ws = Workspace.open(writable_workspace)
    all_ids = sorted(ws.sample_ids())
    subsets.save_subset(ws, "keep", all_ids[:3])
    at = selection_app(writable_workspace, all_ids[3:10]).run()

    at.text_input(key="explore.subset_name").input("keep")
    at.button[0].click().run()
    assert "exists" in at.error[0].value and "Nothing was saved" in at.error[0].value
    assert sorted(subsets.subset_ids(ws, "keep")) == all_ids[:3]

    at.checkbox(key="explore.overwrite").check()
    at.button[0].click().run()
    assert "Replaced subset 'keep' (7 samples)" in at.success[0].value
    assert sorted(subsets.subset_ids(ws, "keep")) == all_ids[3:10]


def test_a_bad_subset_name_is_refused_with_the_reason(writable_workspace: Path) -> None:
    ids = sorted(Workspace.open(writable_workspace).sample_ids())[:2]
    at = selection_app(writable_workspace, ids).run()
    at.text_input(key="explore.subset_name").input("../escape")
    at.button[0].click().run()
    assert "Nothing was saved" in at.error[0].value and "not allowed" in at.error[0].value


def test_samples_without_an_image_get_a_placeholder(writable_workspace: Path) -> None:
    ws = Workspace.open(writable_workspace)
    first = sorted(ws.sample_ids())[0]
    ws.table("samples").update(where=f"id = '{first}'", values={"path": None})
    at = selection_app(writable_workspace, [first]).run()
    assert not at.exception
    (grid,) = at.get("image")
    assert grid.captions[0].endswith("(no image)")
