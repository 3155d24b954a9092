"""The sidebar and the address open only the workspaces under the data root and the one the app
was started on, unless started with ``--any-workspace`` (issue 15, security 3)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app import state
from backend import config
from tests.app.app_testkit import APP_TIMEOUT_S, MAIN_SCRIPT, N_SAMPLES, metric_values


@pytest.fixture
def data_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, app_workspace: Path) -> Path:
    """A data root holding a copy of the session workspace; the session workspace is outside it."""
    root = tmp_path / "data"
    shutil.copytree(app_workspace, root / "workspaces" / "inside")
    monkeypatch.setattr(config, "DEFAULT_DATA_DIR", root)
    monkeypatch.delenv(state.ANY_WORKSPACE_ENV, raising=False)
    return root


def open_in_sidebar(at: AppTest, folder: Path | str) -> AppTest:
    return at.sidebar.text_input[0].input(str(folder)).run()


def test_only_the_data_roots_workspaces_and_the_started_one_open(app_on, data_root: Path, app_workspace: Path,
                                                                empty_workspace: Path, tmp_path: Path) -> None:
    at = app_on(empty_workspace)  # started on a workspace outside the data root: it stays allowed
    assert metric_values(at)["Samples"] == "0"
    open_in_sidebar(at, app_workspace)  # a workspace, but outside the root
    error = at.sidebar.error[0].value
    assert f"outside the data root `{data_root}`" in error and "--any-workspace" in error
    assert "THRESHER_DATA" in error and metric_values(at)["Samples"] == "0"

    # a link under the root that leads out is judged by where it leads
    (data_root / "workspaces" / "link").symlink_to(app_workspace)
    open_in_sidebar(at, data_root / "workspaces" / "link")
    assert "outside the data root" in at.sidebar.error[0].value and metric_values(at)["Samples"] == "0"
    open_in_sidebar(at, data_root / "workspaces" / "inside" / ".." / ".." / ".." / "x")
    assert "outside the data root" in at.sidebar.error[0].value

    open_in_sidebar(at, data_root / "workspaces" / "inside")
    assert not at.sidebar.error and metric_values(at)["Samples"] == f"{N_SAMPLES}"
    open_in_sidebar(at, empty_workspace)  # back to the one it was started on
    assert not at.sidebar.error and metric_values(at)["Samples"] == "0"


def test_the_address_cannot_name_a_folder_outside_the_root(app_on, data_root: Path, app_workspace: Path,
                                                          empty_workspace: Path) -> None:
    app_on(empty_workspace)  # sets $THRESHER_WORKSPACE
    at = AppTest.from_file(MAIN_SCRIPT, default_timeout=APP_TIMEOUT_S)
    at.query_params[state.WORKSPACE_PARAM] = str(app_workspace)
    at.run()
    error = at.sidebar.error[0].value
    assert "outside the data root" in error and "named by the address" in error
    assert metric_values(at)["Samples"] == "0" and at.query_params[state.WORKSPACE_PARAM] == str(empty_workspace)


def test_any_workspace_opens_any_folder(app_on, data_root: Path, app_workspace: Path, empty_workspace: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(state.ANY_WORKSPACE_ENV, "1")
    at = app_on(empty_workspace)
    open_in_sidebar(at, app_workspace)
    assert not at.sidebar.error and metric_values(at)["Samples"] == f"{N_SAMPLES}"
