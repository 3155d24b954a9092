"""AppTest and unit tests for the Explore page: the map, its colourings, the selection (kept
across colourings), the actions on it, its paged gallery and saving it."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from app.components import gallery
from app.components.scatter import is_area_selection, projection_figure, selected_ids
from backend.config import ProjectionSettings
from backend.jobs.project_job import project
from backend.storage import Workspace, decisions, results, runs, subsets
from tests.app.app_testkit import (
    APP_TIMEOUT_S,
    CLASSES,
    EMBEDDING_KEY,
    N_FLAGGED,
    N_SAMPLES,
    add_score_run,
)

EXPLORE = "views/explore.py"


def map_spec(at: AppTest) -> dict:
    (chart,) = at.get("plotly_chart")
    return json.loads(chart.proto.spec)


def array(values: list | dict) -> np.ndarray:
    """A plotly JSON array: a list, or a typed array ``{"dtype", "bdata"}`` (base64)."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.dtype(values["dtype"]))
    return np.asarray(values)


def highlighted(at: AppTest) -> set[str]:
    """The ids the map draws as selected (each trace's ``selectedpoints``)."""
    ids: set[str] = set()
    for trace in map_spec(at)["data"]:
        rows = array(trace.get("selectedpoints", []))
        ids |= {trace["customdata"][int(row)][0] for row in rows}
    return ids


def button(at: AppTest, text: str):
    (found,) = [b for b in at.button if b.label.startswith(text)]
    return found


def subheaders(at: AppTest) -> list[str]:
    return [s.value for s in at.subheader]


def test_explore_shows_a_webgl_map_coloured_by_label(app_on, app_workspace: Path) -> None:
    at = app_on(app_workspace)
    at.switch_page(EXPLORE).run()
    assert not at.exception
    traces = map_spec(at)["data"]
    assert {t["type"] for t in traces} == {"scattergl"}
    assert [t["name"] for t in traces] == list(CLASSES)
    assert sum(len(t["customdata"]) for t in traces) == N_SAMPLES  # x, y are typed arrays
    assert "id: %{customdata[0]}" in traces[0]["hovertemplate"]
    assert any("Click a point to open it" in c.value for c in at.main.caption)

    at.selectbox(key="explore.color_by").set_value("split").run()
    assert not at.exception
    assert sorted(t["name"] for t in map_spec(at)["data"]) == ["test", "train"]


def test_explore_colours_by_the_latest_score_run(app_on, scored_workspace: Path) -> None:
    at = app_on(scored_workspace)
    at.switch_page(EXPLORE).run()
    colour = at.selectbox(key="explore.color_by")
    assert colour.options[:6] == [
        "given label",
        "split",
        "decision (kept, relabeled, dropped, unsure)",
        "current label (after relabels)",
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


def test_the_current_label_colouring_follows_relabels(app_on, writable_scored_workspace: Path) -> None:
    """QA: after a relabel, Explore still coloured (and counted) the sample by its ingested label.
    "given label" stays that; "current label" moves it, on the exact map and on the density
    map's colouring alike."""
    from app import map_data

    ws = Workspace.open(writable_scored_workspace)
    samples = ws.samples(columns=["id", "label"])
    moved = samples["id"].iloc[0]
    old = str(samples["label"].iloc[0])
    new = next(str(label) for label in samples["label"] if str(label) != old)
    decisions.decide(ws, "relabel", [moved], to=new)
    at = app_on(writable_scored_workspace)
    at.switch_page(EXPLORE).run()

    def trace_of(sample_id: str) -> str:
        return next(t["name"] for t in map_spec(at)["data"] if [sample_id] in [row[:1] for row in t["customdata"]])

    at.selectbox(key="explore.color_by").set_value("label").run()
    assert trace_of(moved) == old
    at.selectbox(key="explore.color_by").set_value("current_label").run()
    assert not at.exception and trace_of(moved) == new
    other = samples["id"].iloc[1]
    assert trace_of(other) == str(samples["label"].iloc[1])  # the rest keep their given label

    run_id = runs.latest_run(ws, "project")["run_id"]
    coloring = map_data.map_coloring(str(writable_scored_workspace), run_id, None, "current_label")
    points = map_data.map_points(str(writable_scored_workspace), run_id)
    position = points.ids.to_pylist().index(moved)
    assert coloring.categories[coloring.codes[position]] == new
    given = map_data.map_coloring(str(writable_scored_workspace), run_id, None, "label")
    assert given.categories[given.codes[position]] == old


def test_the_projection_and_the_score_run_share_a_row_at_half_width_each(app_on, scored_workspace: Path) -> None:
    """A score run's label was cut short in a third of the row; each picker now has half."""
    at = app_on(scored_workspace)
    at.switch_page(EXPLORE).run()
    first, second = at.columns[0], at.columns[1]
    assert first.weight == second.weight == 0.5
    assert [s.label for s in first.selectbox] == ["Projection"]
    assert [s.label for s in second.selectbox] == ["Score run"]


def test_a_score_runs_label_puts_what_tells_runs_apart_first() -> None:
    """A narrow select box cuts a label's end off (at 1,000 px with the sidebar open the run id's
    tail was cut), so the label leads with the time and the id's tail and leaves the year off
    this year."""
    from app.components.score_runs import run_label, when_text

    now = pd.Timestamp.now(tz="UTC")
    run = pd.Series({"run_id": "score-20261207-abc123", "created_at": now.replace(month=3, day=9, hour=8, minute=5),
                     "embedding_key": "pixels16", "summary": {"n_label_issues": 4, "n_samples": 1797}})
    assert run_label(run) == "03-09 08:05 · abc123 · 4 issues / 1,797 · pixels16"
    assert when_text(pd.Timestamp("2019-03-09 08:05", tz="UTC"), now) == "2019-03-09 08:05"
    unsummarised = pd.Series({**run.to_dict(), "summary": None})
    assert run_label(unsummarised) == "03-09 08:05 · abc123 · ? issues / ? · pixels16"


def test_flagged_samples_and_high_scores_are_drawn_on_top(app_on, scored_workspace: Path) -> None:
    """Bug 5: plotly draws traces in order (and a trace's points in row order), so the flagged
    trace comes last, and on a score scale the highest values come last."""
    at = app_on(scored_workspace)
    at.switch_page(EXPLORE).run()
    at.selectbox(key="explore.color_by").set_value("label_issue").run()
    traces = map_spec(at)["data"]
    assert [t["name"] for t in traces] == ["not flagged", "flagged"]
    assert traces[1]["legendrank"] < traces[0]["legendrank"]  # the legend still lists flagged first

    at.selectbox(key="explore.color_by").set_value("label_issue_score").run()
    (trace,) = map_spec(at)["data"]
    drawn = array(trace["marker"]["color"])
    assert np.all(np.diff(drawn) >= 0) and len(drawn) == N_SAMPLES


def test_the_chosen_score_run_colours_the_map(app_on, writable_scored_workspace: Path) -> None:
    ws = Workspace.open(writable_scored_workspace)
    older = runs.latest_run(ws, "score")["run_id"]
    newer = add_score_run(ws, seed=7)
    at = app_on(writable_scored_workspace)
    at.switch_page(EXPLORE).run()
    run_box = at.selectbox(key="explore.score_run")
    assert run_box.value == newer and len(run_box.options) == 2

    at.selectbox(key="explore.color_by").set_value("label_issue_score").run()
    shown_newer = array(map_spec(at)["data"][0]["marker"]["color"])
    at.selectbox(key="explore.score_run").set_value(older).run()
    assert not at.exception
    shown_older = array(map_spec(at)["data"][0]["marker"]["color"])
    expected = np.sort(results.read_label_issues(ws, older)["label_issue_score"].to_numpy())
    np.testing.assert_allclose(shown_older, expected, rtol=1e-6)
    assert not np.allclose(shown_newer, shown_older)


def test_colour_by_decision_and_by_tag(app_on, writable_workspace: Path) -> None:
    ws = Workspace.open(writable_workspace)
    ids = sorted(ws.sample_ids())
    decisions.decide(ws, "drop", ids[:2], source="cli")
    decisions.decide(ws, "keep", ids[2:5], source="cli")
    label = ws.samples(columns=["id", "label"]).set_index("id")["label"][ids[5]]
    decisions.decide(ws, "relabel", ids[5:6], to=next(c for c in CLASSES if c != label), source="cli")
    decisions.decide(ws, "tag", ids[:4], tag="blurry", source="cli")
    at = app_on(writable_workspace)
    at.switch_page(EXPLORE).run()
    at.selectbox(key="explore.color_by").set_value("decision").run()
    assert not at.exception
    traces = map_spec(at)["data"]
    assert [(t["name"], len(t["customdata"])) for t in traces] == [
        ("none", N_SAMPLES - 6), ("kept", 3), ("relabeled", 1), ("dropped", 2)
    ]  # decided samples on top of undecided ones
    assert {t["customdata"][0][0] for t in traces if t["name"] == "dropped"} <= set(ids[:2])

    colour = at.selectbox(key="explore.color_by")
    assert "tag: blurry" in colour.options
    colour.set_value("tag:blurry").run()
    traces = map_spec(at)["data"]
    assert [(t["name"], len(t["customdata"])) for t in traces] == [("not tagged", N_SAMPLES - 4), ("tagged", 4)]
    assert {row[0] for row in traces[1]["customdata"]} == set(ids[:4])


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
    at.switch_page(EXPLORE).run()
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


def test_selected_ids_come_from_customdata() -> None:
    selection = {
        "points": [
            {"curve_number": 1, "point_index": 0, "customdata": ["b", "q", ""]},
            {"curve_number": 0, "point_index": 1, "customdata": ["c", "p", ""]},
            {"curve_number": 1, "point_index": 0, "customdata": ["b", "q", ""]},  # duplicate
        ],
        "box": [{"x": [0, 1], "y": [0, 1]}],
    }
    assert selected_ids(selection) == ["b", "c"]
    assert is_area_selection(selection)
    assert not is_area_selection({"points": selection["points"][:1], "box": [], "lasso": []})
    assert selected_ids({"points": []}) == []
    assert selected_ids(None) == []


def test_a_selection_is_drawn_highlighted_in_every_colouring() -> None:
    points = pd.DataFrame({"id": ["a", "b", "c", "d"], "x": [0.0, 1, 2, 3], "y": [0.0, 1, 2, 3],
                           "label": ["p", "q", "p", "q"], "split": "", "score": [0.3, 0.9, 0.1, np.nan]})
    by_label = projection_figure(points, color_by="label", selected=["c", "b"])
    assert [(t.name, list(t.selectedpoints)) for t in by_label.data] == [("p", [1]), ("q", [0])]
    missing, scored = projection_figure(points, color_by="score", selected=["b"]).data
    assert list(scored.customdata[:, 0]) == ["c", "a", "b"] and list(scored.selectedpoints) == [2]
    assert list(missing.selectedpoints) == []
    assert projection_figure(points, color_by="label").data[0].selectedpoints is None


def callback_script(selection: dict | None) -> None:
    """The map's ``on_select`` callback, as if the chart of figure "basis-1" had just returned
    ``selection``."""
    import streamlit as st

    from app.components import selection as panel

    st.session_state["explore.map"] = {"selection": selection}
    panel.on_map_select("basis-1")


def kept(at: AppTest, key: str):
    return at.session_state[key] if key in at.session_state else None


@pytest.mark.parametrize(
    ("event", "selection", "basis", "clicked"),
    [
        ({"points": [{"customdata": ["b"]}, {"customdata": ["c"]}], "box": [{"x": [0, 1]}]}, ["b", "c"], "basis-1",
         None),
        ({"points": [{"customdata": ["d"]}], "box": [], "lasso": []}, ["x"], "old", "d"),  # a click keeps it
        ({"points": [], "box": [], "lasso": []}, None, None, None),  # double click: cleared
    ],
)
def test_map_callback_selects_opens_or_clears(event: dict, selection: list | None, basis: str | None,
                                              clicked: str | None) -> None:
    at = AppTest.from_function(callback_script, kwargs={"selection": event}, default_timeout=APP_TIMEOUT_S)
    at.session_state["explore.selection"] = ["x"]
    at.session_state["explore.selection_basis"] = "old"
    at.run()
    assert not at.exception
    assert kept(at, "explore.selection") == selection
    assert kept(at, "explore.selection_basis") == basis
    assert kept(at, "explore.clicked") == clicked


def test_a_selection_survives_a_change_of_colouring(app_on, scored_workspace: Path) -> None:
    """Bug 4: a new colouring is a new figure, whose chart starts with no selection; the page
    keeps the ids itself and draws them highlighted in the new colouring."""
    chosen = sorted(Workspace.open(scored_workspace).sample_ids())[3:8]
    at = app_on(scored_workspace)
    at.switch_page(EXPLORE)
    at.session_state["explore.selection"] = chosen  # what the chart's callback stores
    at.run()
    assert "5 selected" in subheaders(at)
    assert highlighted(at) == set(chosen)
    for colouring in ("label_issue", "el2n", "split", "decision"):
        at.selectbox(key="explore.color_by").set_value(colouring).run()
        assert not at.exception
        assert "5 selected" in subheaders(at), colouring
        assert highlighted(at) == set(chosen), colouring

    button(at, "Clear selection").click().run()
    assert "5 selected" not in subheaders(at) and highlighted(at) == set()


def test_the_figure_a_selection_was_made_on_stays_unchanged(app_on, scored_workspace: Path) -> None:
    """On the figure the user selected on, the chart still shows the selection itself: the page
    adds no highlight, so the figure (and the chart's box, zoom and drag mode) stays as it was."""
    from app import data
    from app.components.selection import figure_basis

    root = str(scored_workspace)
    run_id = runs.latest_run(Workspace.open(scored_workspace), "project")["run_id"]
    chosen = sorted(Workspace.open(scored_workspace).sample_ids())[:4]
    at = app_on(scored_workspace)
    at.switch_page(EXPLORE)
    at.session_state["explore.selection"] = chosen
    at.session_state["explore.selection_basis"] = figure_basis(data.projection_points(root, run_id), "label")
    at.run()
    assert "4 selected" in subheaders(at) and highlighted(at) == set()
    assert "selectedpoints" not in map_spec(at)["data"][0]
    at.selectbox(key="explore.color_by").set_value("split").run()
    assert highlighted(at) == set(chosen)
    at.selectbox(key="explore.color_by").set_value("label").run()
    assert highlighted(at) == set()  # back on the figure it was made on


def test_clicking_a_point_opens_its_sample_view(app_on, scored_workspace: Path) -> None:
    sample = sorted(Workspace.open(scored_workspace).sample_ids())[0]
    at = app_on(scored_workspace)
    at.switch_page(EXPLORE)
    at.session_state["explore.clicked"] = sample  # what the callback stores for a click
    at.run()
    assert not at.exception
    assert any(sample in m.value for m in at.markdown)  # the sample view's header
    assert any(b.label == "Find similar" for b in at.button)
    at.run()  # opened once per click, not on every rerun
    assert not any(b.label == "Find similar" for b in at.button)


def test_a_flag_filter_the_run_lacks_is_dropped_not_an_error(app_on, writable_scored_workspace: Path) -> None:
    from app import state
    from tests.app.app_testkit import claim_health_counts

    run_id = claim_health_counts(writable_scored_workspace, {"is_outlier": 2})
    at = app_on(writable_scored_workspace)
    at.switch_page(EXPLORE)
    at.session_state[state.EXPLORE_SCORE_RUN] = run_id
    at.session_state["explore.filter.flags"] = ["is_no_such_flag", "is_outlier"]  # as an Overview button sets it
    at.run()
    assert not at.exception, at.exception
    assert at.multiselect(key="explore.filter.flags").value == ["is_outlier"]


def explore_with_selection(app_on, workspace: Path, n: int) -> tuple[AppTest, Workspace, list[str]]:
    """Explore with the first ``n`` samples (by id) selected."""
    ws = Workspace.open(workspace)
    chosen = sorted(ws.sample_ids())[:n]
    at = app_on(workspace)
    at.switch_page(EXPLORE)
    at.session_state["explore.selection"] = chosen
    at.run()
    return at, ws, chosen


def test_actions_on_a_selection_write_decisions_from_explore(app_on, writable_scored_workspace: Path) -> None:
    at, ws, chosen = explore_with_selection(app_on, writable_scored_workspace, 3)
    assert at.selectbox(key="explore.actions.action").value is None  # nothing chosen for the curator
    assert button(at, "Apply to 3 samples").disabled
    at.selectbox(key="explore.actions.action").set_value("drop").run()
    assert not button(at, "Apply to 3 samples").disabled
    button(at, "Apply to 3 samples").click().run()
    assert not at.exception
    assert any("Dropped: 3 samples saved" in s.value for s in at.success)
    log = decisions.read_log(ws)
    assert sorted(log["sample_id"]) == chosen
    assert set(log["action"]) == {"drop"} and set(log["source"]) == {"explore"}
    assert set(log["score_run"]) == {runs.latest_run(ws, "score")["run_id"]}
    assert "3 selected" in subheaders(at)  # the selection stays for the next action


def test_a_tag_typed_just_before_apply_is_the_one_applied(app_on, writable_scored_workspace: Path) -> None:
    """QA: the Apply button carried the tag from when it was drawn, so a tag typed and then
    clicked without Enter was refused as empty, and the next one applied the previous tag."""
    at, ws, _ = explore_with_selection(app_on, writable_scored_workspace, 3)
    at.selectbox(key="explore.actions.action").set_value("tag").run()
    at.text_input(key="explore.actions.tag").input("checked")
    button(at, "Apply to 3 samples").click().run()  # the text and the click in one rerun, as a browser sends them
    assert not at.exception and not at.error, [e.value for e in at.error]
    at.text_input(key="explore.actions.tag").input("second")
    button(at, "Apply to 3 samples").click().run()
    log = decisions.read_log(ws)
    assert list(log["new_value"]) == ["checked"] * 3 + ["second"] * 3
    assert any("Tagged 'second': 3 samples saved" in s.value for s in at.success)


def test_a_refused_tag_is_shown_as_typed_not_as_a_link(app_on, writable_scored_workspace: Path) -> None:
    """QA: the error repeated the typed tag as markdown, so ``[x](http://…)`` became a live link."""
    at, ws, _ = explore_with_selection(app_on, writable_scored_workspace, 2)
    at.selectbox(key="explore.actions.action").set_value("tag").run()
    at.text_input(key="explore.actions.tag").input("[x](http://evil.example) <b>")
    button(at, "Apply to 2 samples").click().run()
    (error,) = at.error
    assert "Not saved" in error.value and "](http" not in error.value and "\\[x\\]" in error.value
    assert decisions.read_log(ws).empty


def test_the_selection_gallery_pages_and_sorts_by_a_score(
    app_on, scored_workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gallery, "PAGE_SIZE", 10)
    ws = Workspace.open(scored_workspace)
    everything = sorted(ws.sample_ids())
    run_id = runs.latest_run(ws, "score")["run_id"]
    el2n = results.read_scores(ws, run_id).set_index("id")["el2n"]
    at = app_on(scored_workspace)
    at.switch_page(EXPLORE)
    at.session_state["explore.selection"] = everything
    at.run()
    assert at.selectbox(key="explore.gallery.sort").value == "label_issue_score"  # the default
    at.selectbox(key="explore.gallery.sort").set_value("el2n").run()
    (grid,) = at.get("image")
    assert len(grid.value) == 10
    shown = [float(c.rsplit("el2n ", 1)[1]) for c in grid.captions]
    assert shown == pytest.approx(sorted(el2n, reverse=True)[:10], abs=5e-3)  # captions: 3 digits

    at.number_input(key="explore.gallery.page").set_value(4).run()
    (grid,) = at.get("image")
    assert len(grid.value) == N_SAMPLES - 30
    assert any("Samples 31–36 of 36" in c.value for c in at.caption)
    at.toggle(key="explore.gallery.descending").set_value(False).run()
    (grid,) = at.get("image")
    shown = [float(c.rsplit("el2n ", 1)[1]) for c in grid.captions]
    assert shown == pytest.approx(sorted(el2n)[30:], abs=5e-3)


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
    button(at, "Save 5 samples").click().run()
    assert not at.exception
    assert "Saved subset 'picked' (5 samples)" in at.success[0].value
    assert sorted(subsets.subset_ids(ws, "picked")) == ids


def test_saving_over_an_existing_name_needs_the_overwrite_box(writable_workspace: Path) -> None:
    ws = Workspace.open(writable_workspace)
    all_ids = sorted(ws.sample_ids())
    subsets.save_subset(ws, "keep", all_ids[:3])
    at = selection_app(writable_workspace, all_ids[3:10]).run()

    at.text_input(key="explore.subset_name").input("keep")
    button(at, "Save 7 samples").click().run()
    assert "exists" in at.error[0].value and "Nothing was saved" in at.error[0].value
    assert sorted(subsets.subset_ids(ws, "keep")) == all_ids[:3]

    at.checkbox(key="explore.overwrite").check()
    button(at, "Save 7 samples").click().run()
    assert "Replaced subset 'keep' (7 samples)" in at.success[0].value
    assert sorted(subsets.subset_ids(ws, "keep")) == all_ids[3:10]


def test_a_bad_subset_name_is_refused_with_the_reason(writable_workspace: Path) -> None:
    ids = sorted(Workspace.open(writable_workspace).sample_ids())[:2]
    at = selection_app(writable_workspace, ids).run()
    at.text_input(key="explore.subset_name").input("../escape")
    button(at, "Save 2 samples").click().run()
    assert "Nothing was saved" in at.error[0].value and "not allowed" in at.error[0].value


def test_samples_without_an_image_get_a_placeholder(writable_workspace: Path) -> None:
    ws = Workspace.open(writable_workspace)
    first = sorted(ws.sample_ids())[0]
    ws.table("samples").update(where=f"id = '{first}'", values={"path": None})
    at = selection_app(writable_workspace, [first]).run()
    assert not at.exception
    (grid,) = at.get("image")
    assert grid.captions[0].endswith("(no image)")


def test_the_health_checks_colour_the_map_when_the_run_has_them() -> None:
    from app.components.explore_controls import color_choices

    runs_frame = pd.DataFrame({"run_id": ["r1", "r2"], "config": [{"scorers": ["el2n"]}, {"scorers": ["el2n"]}],
                               "summary": [{"health": {"counts": {}}}, {}]})
    with_health = color_choices(runs_frame, "r1", [])
    assert {"is_outlier", "outlier_score", "is_split_leak", "blurry_score"} <= set(with_health)
    assert "is_outlier" not in color_choices(runs_frame, "r2", [])
