"""Fixtures for the app tests (the workspace they share is built by :mod:`app_testkit`)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from backend.storage import Workspace
from tests.app.app_testkit import APP_TIMEOUT_S, MAIN_SCRIPT, add_score_run, build_workspace


@pytest.fixture(scope="session")
def app_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only (by convention) workspace shared by the whole session."""
    base = tmp_path_factory.mktemp("app-ws")
    return build_workspace(base / "workspace", base / "images")


@pytest.fixture
def writable_workspace(app_workspace: Path, tmp_path: Path) -> Path:
    """A private copy of the session workspace for tests that write to it."""
    return Path(shutil.copytree(app_workspace, tmp_path / "workspace"))


@pytest.fixture
def empty_workspace(tmp_path: Path) -> Path:
    return Workspace.open(tmp_path / "empty", create=True).root


@pytest.fixture
def app_on(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], AppTest]:
    """``app_on(workspace[, page])``: the whole app (router and sidebar) opened on ``workspace``,
    run once; with ``page`` (e.g. ``"views/runs.py"``) switched to that page, which must run
    without an exception."""

    def make(workspace: Path, page: str | None = None) -> AppTest:
        monkeypatch.setenv("THRESHER_WORKSPACE", str(workspace))
        at = AppTest.from_file(MAIN_SCRIPT, default_timeout=APP_TIMEOUT_S).run()
        if page is not None:
            at.switch_page(page).run()
            assert not at.exception, at.exception
        return at

    return make


@pytest.fixture(scope="session")
def scored_workspace(app_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session workspace plus one fake score run (read-only by convention)."""
    root = Path(shutil.copytree(app_workspace, tmp_path_factory.mktemp("scored") / "workspace"))
    add_score_run(Workspace.open(root))
    return root


@pytest.fixture
def writable_scored_workspace(scored_workspace: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(scored_workspace, tmp_path / "workspace"))


@pytest.fixture(scope="session")
def noisy_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``thresher demo --label-noise 0.05`` (5 % of the train labels moved, a real score run) with
    a PCA map instead of UMAP; built once, read-only by convention: use :func:`noisy_workspace`."""
    from backend.commands import _demo_label_noise
    from backend.config import ProjectionSettings
    from backend.jobs.ingest_job import ingest
    from backend.jobs.project_job import project
    from backend.jobs.score_job import score
    from tests.app.app_testkit import EMBEDDING_KEY, add_pixel_embeddings

    ws = Workspace.open(tmp_path_factory.mktemp("noisy") / "digits", create=True)
    ingest(ws, "demo")
    _demo_label_noise(ws, 0.05)
    add_pixel_embeddings(ws)
    project(ws, ProjectionSettings(method="pca"), embedding_key=EMBEDDING_KEY)
    score(ws, embedding_key=EMBEDDING_KEY)
    return ws.root


@pytest.fixture
def noisy_workspace(noisy_template: Path, tmp_path: Path) -> Path:
    """A private copy of :func:`noisy_template`."""
    return Path(shutil.copytree(noisy_template, tmp_path / "digits"))
