"""AppTest: the router, the shared sidebar and the Overview page."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app import state
from backend import config
from backend.config import ProjectionSettings
from backend.jobs.project_job import project
from backend.storage import Workspace
from tests.app.app_testkit import (
    APP_TIMEOUT_S,
    CLASSES,
    EMBEDDING_KEY,
    MAIN_SCRIPT,
    N_SAMPLES,
    metric_values,
)

PAGES = (
    "views/overview.py",
    "views/explore.py",
    "views/review.py",
    "views/prune.py",
    "views/collapse.py",
    "views/export.py",
    "views/runs.py",
)
SCORE_PAGES = ("views/review.py", "views/prune.py", "views/collapse.py")


def test_overview_shows_counts_chart_and_tables(app_on, app_workspace: Path) -> None:
    at = app_on(app_workspace)
    assert not at.exception
    assert at.title[0].value == "Overview"
    assert metric_values(at) == {
        "Samples": f"{N_SAMPLES}",
        "Classes": f"{len(CLASSES)}",
        "Splits": "2",
        "Embedding models": "1",
        "Vectors": f"{N_SAMPLES}",
        "Projection runs": "1",
        "Subsets": "0",
    }
    assert len(at.get("plotly_chart")) == 1  # the class histogram
    splits = at.dataframe[0].value
    assert dict(zip(splits["split"], splits["n"], strict=True)) == {"test": 12, "train": 24}
    assert "No subsets yet" in " ".join(c.value for c in at.caption)

    at.toggle[0].set_value(False).run()  # unstacked histogram
    assert not at.exception


@pytest.mark.parametrize("page", PAGES)
def test_every_page_explains_a_missing_workspace(app_on, tmp_path: Path, page: str) -> None:
    at = app_on(tmp_path / "nowhere")
    at.switch_page(page).run()
    assert not at.exception
    message = at.info[0].value
    assert "is not a Thresher workspace" in message and "thresher demo" in message


@pytest.mark.parametrize(
    ("page", "hint"),
    [
        ("views/overview.py", "no samples yet"),
        ("views/explore.py", "No projection yet"),
        ("views/review.py", "No score run yet"),
        ("views/prune.py", "No score run yet"),
        ("views/collapse.py", "No score run yet"),
        ("views/export.py", "Nothing to export"),
        ("views/runs.py", "No runs yet"),
    ],
)
def test_every_page_explains_an_empty_workspace(
    app_on, empty_workspace: Path, page: str, hint: str
) -> None:
    at = app_on(empty_workspace)
    at.switch_page(page).run()
    assert not at.exception
    assert hint in at.info[0].value


@pytest.mark.parametrize("page", SCORE_PAGES)
def test_score_pages_explain_how_to_score(app_on, app_workspace: Path, page: str) -> None:
    at = app_on(app_workspace)  # samples, embeddings and a map, but no score run
    at.switch_page(page).run()
    assert not at.exception
    message = at.info[0].value
    assert (
        "No score run yet" in message and f"thresher score --workspace {app_workspace}" in message
    )


@pytest.fixture
def tmp_data_root(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every test folder is under the data root (the sidebar opens only the workspaces there)."""
    monkeypatch.setattr(config, "DEFAULT_DATA_DIR", tmp_path_factory.getbasetemp())


@pytest.mark.usefixtures("tmp_data_root")
def test_sidebar_opens_another_workspace_only_when_it_is_one(
    app_on, app_workspace: Path, empty_workspace: Path, tmp_path: Path
) -> None:
    at = app_on(empty_workspace)
    assert metric_values(at)["Samples"] == "0"

    at.sidebar.text_input[0].input(str(tmp_path / "not-here")).run()
    assert not at.exception
    assert "is not a Thresher workspace" in at.sidebar.error[0].value
    assert metric_values(at)["Samples"] == "0"  # still the previous workspace

    at.sidebar.text_input[0].input(str(app_workspace)).run()
    assert not at.sidebar.error
    assert metric_values(at)["Samples"] == f"{N_SAMPLES}"


@pytest.mark.usefixtures("tmp_data_root")
def test_the_workspace_chosen_in_the_sidebar_survives_a_reload(
    app_on, app_workspace: Path, empty_workspace: Path
) -> None:
    at = app_on(empty_workspace)
    at.sidebar.text_input[0].input(str(app_workspace)).run()
    chosen = str(app_workspace.resolve())
    assert at.query_params[state.WORKSPACE_PARAM] == chosen
    at.switch_page("views/runs.py").run()
    assert at.query_params[state.WORKSPACE_PARAM] == chosen  # kept on every page
    reloaded = AppTest.from_file(MAIN_SCRIPT, default_timeout=APP_TIMEOUT_S)  # a new session, same address
    reloaded.query_params = dict(at.query_params)
    reloaded.run()
    assert not reloaded.exception and not reloaded.sidebar.error
    assert metric_values(reloaded)["Samples"] == f"{N_SAMPLES}"
    assert reloaded.sidebar.text_input[0].value == chosen


@pytest.mark.usefixtures("tmp_data_root")
def test_an_address_naming_no_workspace_shows_why_and_the_default(
    app_on, empty_workspace: Path, tmp_path: Path
) -> None:
    app_on(empty_workspace)  # sets the default ($THRESHER_WORKSPACE)
    at = AppTest.from_file(MAIN_SCRIPT, default_timeout=APP_TIMEOUT_S)
    at.query_params[state.WORKSPACE_PARAM] = str(tmp_path / "not-here")
    at.run()
    assert not at.exception
    error = at.sidebar.error[0].value
    assert "is not a Thresher workspace" in error and "named by the address" in error
    assert f"Showing `{empty_workspace}`" in error
    assert metric_values(at)["Samples"] == "0"
    assert at.query_params[state.WORKSPACE_PARAM] == str(empty_workspace)


def test_overview_shows_a_workers_new_run_on_the_next_rerun(
    app_on, writable_workspace: Path
) -> None:
    at = app_on(writable_workspace)
    assert metric_values(at)["Projection runs"] == "1"
    ws = Workspace.open(writable_workspace)  # as a worker process would
    project(ws, ProjectionSettings(method="pca", seed=3), embedding_key=EMBEDDING_KEY)
    at.run()
    assert metric_values(at)["Projection runs"] == "2"


def test_a_health_count_opens_explore_coloured_by_it(app_on, writable_scored_workspace: Path) -> None:
    from app import state
    from tests.app.app_testkit import claim_health_counts

    claim_health_counts(writable_scored_workspace, {"is_outlier": 2})
    at = app_on(writable_scored_workspace, "views/overview.py")
    button = at.button(key="overview.health.is_outlier")
    assert button.label == "outliers (Mahalanobis): 2"
    button.click().run()
    assert not at.exception, at.exception
    assert at.session_state[state.EXPLORE_COLOR] == "is_outlier"
    assert at.title[0].value == "Explore"
    assert at.multiselect(key=f"{state.EXPLORE_FILTER}.flags").value == ["is_outlier"]  # just those samples


def test_the_headline_numbers_wrap_instead_of_being_cut(app_on, app_workspace: Path) -> None:
    """The metrics sit in a wrapping row, each as wide as its text: in equal columns a 1,000 px
    window cut "1,797" to "1,…"."""
    at = app_on(app_workspace)
    assert [m.label for m in at.metric][:2] == ["Samples", "Classes"]
    assert not any(len(column.metric) for column in at.columns)
