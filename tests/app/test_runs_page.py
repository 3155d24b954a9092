"""AppTest for the Runs page: the list, a comparison of two score runs, deleting a run."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from app import state
from backend.storage import Workspace, runs
from backend.storage.score_export import NC_SAMPLE_SCORES as NC_SAMPLE_COLUMNS
from tests.app.app_testkit import N_FLAGGED, N_SAMPLES, SCORERS, add_score_run, metric_values


def runs_page(app_on, workspace: Path) -> AppTest:
    return app_on(workspace, "views/runs.py")


def test_runs_listed_and_two_score_runs_compared(app_on, writable_scored_workspace: Path) -> None:
    ws = Workspace.open(writable_scored_workspace)
    newer = add_score_run(ws, seed=1)
    at = runs_page(app_on, writable_scored_workspace)
    assert at.title[0].value == "Runs"
    listed = at.dataframe[0].value
    assert set(listed["run_id"]) == set(runs.list_runs(ws)["run_id"]) and listed["run_id"].iloc[0] == newer
    assert at.selectbox(key=state.RUNS_COMPARE_KIND).value == "score"
    assert at.selectbox(key=f"{state.RUNS_COMPARE_B}.score").value == newer  # newest as b
    shown = metric_values(at)
    assert shown["Flagged by a"] == shown["Flagged by b"] == str(N_FLAGGED)
    assert shown["Jaccard"] == "1.00"  # the test kit flags the same samples in every run
    settings, scores = at.dataframe[1].value, at.dataframe[2].value
    assert set(settings["field"]) == {"seed"}  # times and durations are not counted as differences
    assert set(scores["name"]) == {*SCORERS, "cl_self_confidence", "suggested_probability", *NC_SAMPLE_COLUMNS}
    assert (scores["n"] == N_SAMPLES).all()
    assert "Neural collapse" in " ".join(m.value for m in at.markdown)

    at.selectbox(key=state.RUNS_KIND).set_value("project").run()
    assert set(at.dataframe[0].value["kind"]) == {"project"}


def test_delete_a_run_after_confirming(app_on, writable_scored_workspace: Path) -> None:
    ws = Workspace.open(writable_scored_workspace)
    older = runs.list_runs(ws, "score")["run_id"].iloc[0]
    add_score_run(ws, seed=1)
    at = runs_page(app_on, writable_scored_workspace)
    at.selectbox(key=state.RUNS_DELETE).set_value(older).run()
    assert at.button(key="runs.delete_button").disabled  # not confirmed yet
    at.checkbox(key=f"{state.RUNS_DELETE_CONFIRM}.{older}").check().run()
    at.button(key="runs.delete_button").click().run()
    assert not at.exception
    assert at.success[0].value == f"Deleted run {older}."
    assert older not in set(runs.list_runs(ws)["run_id"])
    assert older not in set(at.dataframe[0].value["run_id"])
    assert "two finished runs of one kind" in at.info[0].value  # one score run is left


def test_a_confirmation_never_carries_over_to_another_run(app_on, writable_scored_workspace: Path) -> None:
    ws = Workspace.open(writable_scored_workspace)
    first = runs.list_runs(ws, "score")["run_id"].iloc[0]
    second = add_score_run(ws, seed=1)
    at = runs_page(app_on, writable_scored_workspace)
    at.selectbox(key=state.RUNS_DELETE).set_value(first).run()
    at.checkbox(key=f"{state.RUNS_DELETE_CONFIRM}.{first}").check().run()
    assert not at.button(key="runs.delete_button").disabled
    at.selectbox(key=state.RUNS_DELETE).set_value(second).run()
    assert at.button(key="runs.delete_button").disabled  # the tick was for the first run
    assert {first, second} <= set(runs.list_runs(ws)["run_id"])


def test_a_running_run_needs_the_force_box(app_on, writable_scored_workspace: Path) -> None:
    ws = Workspace.open(writable_scored_workspace)
    running = runs.start_run(ws, "score", {})
    at = runs_page(app_on, writable_scored_workspace)
    at.selectbox(key=state.RUNS_DELETE).set_value(running).run()
    assert "still marked running" in at.warning[0].value
    at.checkbox(key=f"{state.RUNS_DELETE_CONFIRM}.{running}").check().run()
    at.button(key="runs.delete_button").click().run()
    assert "Nothing was deleted" in at.error[0].value and "still running" in at.error[0].value
    assert running in set(runs.list_runs(ws)["run_id"])
    at.checkbox(key=f"{state.RUNS_DELETE_FORCE}.{running}").check().run()
    at.checkbox(key=f"{state.RUNS_DELETE_CONFIRM}.{running}").check().run()
    at.button(key="runs.delete_button").click().run()
    assert at.success[0].value == f"Deleted run {running}."
    assert running not in set(runs.list_runs(ws)["run_id"])


def test_two_prune_runs_compare_their_kept_samples(app_on, writable_scored_workspace: Path) -> None:
    from backend.jobs.prune_job import prune

    ws = Workspace.open(writable_scored_workspace)
    score_run = runs.list_runs(ws, "score")["run_id"].iloc[0]
    for name, method in (("hard", "keep_hard:el2n"), ("easy", "keep_easy:el2n")):
        prune(ws, name=name, ratio=0.5, method=method, score_run=score_run, label_issues="keep")  # complements
    at = runs_page(app_on, writable_scored_workspace)
    at.selectbox(key=state.RUNS_COMPARE_KIND).set_value("prune").run()
    assert not at.exception
    shown = metric_values(at)
    assert shown["Kept by a"] == shown["Kept by b"] == str(N_SAMPLES // 2)
    assert shown["By both"] == "0" and shown["Jaccard"] == "0.00"


def test_a_replaced_subset_changes_the_prune_comparison_on_the_next_rerun(
    app_on, writable_scored_workspace: Path
) -> None:
    """The comparison reads the subsets table: saving over a prune's subset (no new run, so the
    runs table is unchanged) must show on the next rerun, not a cached kept set."""
    from backend.jobs.prune_job import prune
    from backend.storage import subsets

    ws = Workspace.open(writable_scored_workspace)
    score_run = runs.list_runs(ws, "score")["run_id"].iloc[0]
    hard = prune(ws, name="hard", ratio=0.5, method="keep_hard:el2n", score_run=score_run, label_issues="keep")
    prune(ws, name="easy", ratio=0.5, method="keep_easy:el2n", score_run=score_run, label_issues="keep")
    at = runs_page(app_on, writable_scored_workspace)
    at.selectbox(key=state.RUNS_COMPARE_KIND).set_value("prune").run()
    assert metric_values(at)["Jaccard"] == "0.00"
    subsets.save_subset(ws, "hard", subsets.subset_ids(ws, "easy"), origin="prune", run_id=hard.run_id,
                        overwrite=True)  # as another session would
    at.run()
    assert metric_values(at)["Jaccard"] == "1.00" and metric_values(at)["By both"] == str(N_SAMPLES // 2)
