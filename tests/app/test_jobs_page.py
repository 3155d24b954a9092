"""AppTest for the Jobs page: its forms start real jobs (``backend.jobs.job_manager``) and the
list, the sidebar's link and the job's folder show them."""

from __future__ import annotations

import json
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from app import state
from app.components.jobs_panel import FORMS, WEIGHTS
from backend.jobs import job_manager
from backend.storage import Workspace, runs

WAIT_S = 60


def jobs_page(app_on, workspace: Path) -> AppTest:
    return app_on(workspace, "views/jobs.py")


def key(kind: str, name: str) -> str:
    return f"{state.JOBS_FORM}.{kind}.{name}"


def job_dirs(workspace: Path) -> list[Path]:
    jobs = Workspace.open(workspace).jobs_dir
    return sorted(jobs.iterdir()) if jobs.exists() else []


def sidebar_links(at: AppTest) -> list[str]:
    return [link.proto.label for link in at.sidebar.get("page_link")]


def wait_for_job(root: Path, job_id: str) -> Workspace:
    """Wait (at most WAIT_S) until the job has ended; returns the workspace."""
    ws = Workspace.open(root)
    deadline = time.monotonic() + WAIT_S
    while job_manager.read_job(ws, job_id).active and time.monotonic() < deadline:
        time.sleep(0.1)
    return ws


def test_the_page_opens_with_a_form_per_kind(app_on, writable_workspace: Path) -> None:
    at = jobs_page(app_on, writable_workspace)
    assert at.title[0].value == "Jobs"
    assert [tab.label for tab in at.tabs] == list(FORMS)
    assert any("No jobs yet" in c.value for c in at.main.caption)
    assert not sidebar_links(at)  # no job runs
    assert at.selectbox(key=key("project", "embedding")).options == ["(default)", "pixels-8"]


def test_a_form_starts_a_job_that_the_list_follows(app_on, writable_workspace: Path) -> None:
    at = jobs_page(app_on, writable_workspace)
    at.selectbox(key=key("project", "method")).set_value("pca")
    at.number_input(key=key("project", "seed")).set_value(7)
    at.button(key="FormSubmitter:jobs.form.project.form-Start the projection").click().run()
    assert not at.exception
    [job_dir] = job_dirs(writable_workspace)
    assert at.success[0].value.startswith(f"Started job {job_dir.name}.")
    assert sidebar_links(at) == ["1 job running"]  # the page reran after the start: the sidebar counts it
    saved = json.loads((job_dir / "job.json").read_text())
    assert saved["kind"] == "project" and saved["params"]["method"] == "pca" and saved["params"]["seed"] == 7
    assert any(f"`{job_dir.name}`" in m.value and "**project**" in m.value for m in at.main.markdown)

    ws = wait_for_job(writable_workspace, job_dir.name)
    at.run()
    assert any("**project** · done" in m.value for m in at.main.markdown)
    run_id = job_manager.read_job(ws, job_dir.name).run_id
    assert runs.get_run(ws, run_id)["config"]["seed"] == 7
    assert any(run_id in c.value for c in at.main.caption)  # the card names the run it made


def test_the_sidebar_links_running_jobs_from_every_page(app_on, writable_workspace: Path) -> None:
    ws = Workspace.open(writable_workspace)
    job = job_manager.start_job(ws, "project", {"method": "umap"})  # seconds of numba compilation
    try:
        at = app_on(writable_workspace, "views/overview.py")
        assert sidebar_links(at) == ["1 job running"]
        at.switch_page("views/jobs.py").run()
        assert at.button(key=f"jobs.cancel.{job.job_id}").label == "Cancel"
    finally:
        job_manager.cancel_job(ws, job.job_id, grace_s=1)


def test_a_checkpoint_that_is_not_there_is_refused(app_on, writable_workspace: Path) -> None:
    at = jobs_page(app_on, writable_workspace)
    at.radio(key=key("embed", "weights")).set_value(WEIGHTS[2])
    at.text_input(key=key("embed", "pretrained")).input(str(writable_workspace / "missing.pt"))
    at.button(key="FormSubmitter:jobs.form.embed.form-Start embedding").click().run()
    assert "no checkpoint file at" in at.error[0].value and "missing.pt" in at.error[0].value
    assert not job_dirs(writable_workspace)


def test_the_page_explains_a_missing_workspace(app_on, tmp_path: Path) -> None:
    at = jobs_page(app_on, tmp_path / "nowhere")
    assert "is not a Thresher workspace" in at.info[0].value


def test_a_failed_job_says_what_to_do(app_on, empty_workspace: Path) -> None:
    at = jobs_page(app_on, empty_workspace)
    at.button(key="FormSubmitter:jobs.form.project.form-Start the projection").click().run()
    [job_dir] = job_dirs(empty_workspace)
    wait_for_job(empty_workspace, job_dir.name)
    at.run()
    assert any("**project** · failed" in m.value for m in at.main.markdown)
    assert f"has no embeddings yet; run `thresher embed --workspace {empty_workspace}` first" in at.error[0].value
    assert any("error: " in c.value for c in at.main.code)  # the log's tail, open on a failure
