"""Jobs: real ``thresher`` commands in detached processes, on a 36-image workspace.

The cancel and kill tests use ``project --method umap``: its run is recorded before UMAP is
imported and compiled, so it stays ``running`` for seconds, long enough to stop it mid-run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from backend.jobs import job_manager
from backend.jobs.job_manager import EXPECTED_STAGES, Job, build_argv
from backend.storage import ConflictError, Workspace, runs
from tests.app.app_testkit import build_workspace

WAIT_S = 90


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    base = tmp_path_factory.mktemp("jobs")
    return Workspace.open(build_workspace(base / "workspace", base / "images"))


def wait_for(ws: Workspace, job_id: str, until: Callable[[Job], bool]) -> Job:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        job = job_manager.read_job(ws, job_id)
        if until(job):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} is {job.status}; log: {job_manager.job_log_tail(ws, job_id)}")


def record(ws: Workspace, job_id: str) -> dict:
    return json.loads((ws.jobs_dir / job_id / "job.json").read_text())


def test_a_job_outlives_the_process_that_started_it(ws: Workspace) -> None:
    """Started by a process that exits at once (an app restarting), the job runs to its end."""
    starter = ("import sys; from backend.storage import Workspace; from backend.jobs import job_manager; "
               "print(job_manager.start_job(Workspace.open(sys.argv[1]), 'project', "
               "{'method': 'pca', 'seed': 3}).job_id)")
    job_id = subprocess.run([sys.executable, "-c", starter, str(ws.root)], capture_output=True, text=True,
                            check=True, timeout=60).stdout.strip()
    job = wait_for(ws, job_id, lambda j: not j.active)
    assert (job.status, job.returncode, job.problem) == ("done", 0, None), job_manager.job_log_tail(ws, job_id)
    assert job.argv == ["project", f"--workspace={ws.root}", "--method=pca", "--seed=3"]
    run = runs.get_run(ws, job.run_id)
    assert run["status"] == "done" and run["config"]["seed"] == 3 and run["config"]["method"] == "pca"
    last = job_manager.job_log_tail(ws, job_id)[-1]
    assert re.fullmatch(rf"projected 36 points of pixels-8 in \d+\.\d s \(run {job.run_id}\)", last), last
    saved = record(ws, job_id)
    assert saved["status"] == "done" and saved["finished"] and saved["pid"] > 0 and saved["run_ids"] == [job.run_id]
    assert [j.job_id for j in job_manager.list_jobs(ws, "project")][0] == job_id


def test_a_score_job_reports_its_stages(ws: Workspace) -> None:
    job = job_manager.start_job(ws, "score", {"scorers": ["el2n", "aum"]})
    seen: list[float] = []
    job = wait_for(ws, job.job_id, lambda j: seen.append(j.progress.fraction) or not j.active)
    assert job.status == "done", job_manager.job_log_tail(ws, job.job_id)
    assert seen == sorted(seen) and seen[-1] == 1.0  # every expected stage was logged by that name
    assert set(EXPECTED_STAGES["score"]) < set(job.progress.stages)  # plus one per scorer
    assert runs.get_run(ws, job.run_id)["config"]["scorers"] == ["el2n", "aum"]


def test_a_job_killed_with_sigkill_is_interrupted_and_its_run_failed(ws: Workspace) -> None:
    job = job_manager.start_job(ws, "project", {"method": "umap"})
    job = wait_for(ws, job.job_id, lambda j: j.run_id is not None)
    assert job.status == "running" and runs.get_run(ws, job.run_id)["status"] == "running"
    os.killpg(record(ws, job.job_id)["pid"], signal.SIGKILL)
    job = wait_for(ws, job.job_id, lambda j: not j.active)
    assert job.status == "interrupted" and job.returncode is None
    assert "Start the job again" in job.problem
    run = runs.get_run(ws, job.run_id)
    assert (run["status"], run["error"]) == ("failed", "interrupted: process ended without finishing")


def test_cancel_stops_the_job_and_marks_its_run(ws: Workspace) -> None:
    job = job_manager.start_job(ws, "project", {"method": "umap"})
    job = wait_for(ws, job.job_id, lambda j: j.run_id is not None)
    assert job_manager.cancel_job(ws, job.job_id).status in ("cancelling", "cancelled")
    # the job reads "cancelled" as soon as its process is gone; its supervisor records the exit
    # code a moment later (a CI run under load once read it in between: returncode None)
    job = wait_for(ws, job.job_id, lambda j: not j.active and j.returncode is not None)
    assert (job.status, job.returncode) == ("cancelled", 128 + signal.SIGTERM)  # it ended itself, before SIGKILL
    run = runs.get_run(ws, job.run_id)
    assert (run["status"], run["error"]) == ("failed", "cancelled by the user")
    with pytest.raises(ConflictError, match="nothing to cancel"):
        job_manager.cancel_job(ws, job.job_id)


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("shell", {"command": "ls"}, "unknown job kind 'shell'"),
        ("project", {"method": "tsne"}, "method is one of umap, pca"),
        ("project", {"method": "pca", "device": "cuda"}, "unknown parameter"),
        ("prune", {"ratio": 0.5}, "name is required"),
        ("prune", {"ratio": 1.0, "name": "x"}, "below 1"),
        ("prune", {"ratio": 0.5, "name": "x", "per_class": "all"}, "not a valid value"),
        ("evaluate", {"subset": "a", "folds": "5"}, "is a number"),
        ("evaluate", {"subset": "a\nb"}, "a line of text"),
        ("score", {"scorers": "el2n;rm -rf ~"}, "names of letters"),
        ("embed", {"model": "pixels", "batch_size": 2.5}, "whole number"),
    ],
)
def test_a_bad_parameter_is_refused_before_anything_starts(ws: Workspace, kind: str, params: dict,
                                                          message: str) -> None:
    before = set(ws.jobs_dir.iterdir()) if ws.jobs_dir.exists() else set()
    with pytest.raises(ValueError, match=message):
        job_manager.start_job(ws, kind, params)
    assert (set(ws.jobs_dir.iterdir()) if ws.jobs_dir.exists() else set()) == before


def test_arguments_come_from_the_allow_list_only(tmp_path: Path) -> None:
    argv = build_argv(tmp_path, "prune", {"name": "-rf", "ratio": 0.25, "overwrite": True, "method": "ccs:aum",
                                          "label_issues": "keep", "seed": None, "per_class": "min:3"})
    assert argv == ["prune", f"--workspace={tmp_path.resolve()}", "--ratio=0.25", "--method=ccs:aum",
                    "--per-class=min:3", "--name=-rf", "--label-issues=keep", "--overwrite"]
    assert build_argv(tmp_path, "score", {"scorers": "el2n, aum"})[-1] == "--scorers=el2n,aum"
    assert build_argv(tmp_path, "embed", {"model": "ViT-B-32", "pretrained": "none"})[2:] == [
        "--model=ViT-B-32", "--pretrained=none"]


def fake_job(ws: Workspace, kind: str, **fields) -> str:
    """A job folder written by hand (no process), as ``start_job`` leaves it."""
    job_id = f"{kind}-20260101-120000-{len(list(ws.jobs_dir.glob('*'))) if ws.jobs_dir.exists() else 0:06x}"
    (ws.jobs_dir / job_id).mkdir(parents=True)
    base = {"id": job_id, "kind": kind, "params": {}, "argv": [kind], "created": "2026-01-01T12:00:00+00:00",
            "pid": None, "pid_start": None, "status": "running", "returncode": None, "run_ids": []}
    (ws.jobs_dir / job_id / "job.json").write_text(json.dumps({**base, **fields}))
    return job_id


def test_a_reused_pid_is_not_taken_for_the_job(ws: Workspace) -> None:
    me = os.getpid()
    started = job_manager._process_start(me)
    assert job_manager.read_job(ws, fake_job(ws, "project", pid=me, pid_start=started)).status == "running"
    assert job_manager.read_job(ws, fake_job(ws, "project", pid=me, pid_start=started - 1)).status == "interrupted"


def test_progress_is_done_stages_over_expected(ws: Workspace) -> None:
    job_id = fake_job(ws, "score", pid=os.getpid(), pid_start=job_manager._process_start(os.getpid()))
    events = [("load dataset", "start"), ("load dataset", "done"), ("probes", "start"), ("probes", "done"),
              ("pruning scores (training dynamics)", "start"), ("score el2n", "start"), ("score el2n", "done")]
    lines = [json.dumps({"stage": s, "event": e}) for s, e in events] + ['{"stage": "label no']  # cut by a kill
    (ws.jobs_dir / job_id / "progress.jsonl").write_text("\n".join(lines))
    progress = job_manager.read_job(ws, job_id).progress
    assert progress.fraction == 2 / len(EXPECTED_STAGES["score"])
    assert progress.current == "pruning scores (training dynamics)"

    embed_id = fake_job(ws, "embed", pid=os.getpid(), pid_start=job_manager._process_start(os.getpid()))
    bar = "embed pixels-8:  10%|#  | 30/300 [00:01<00:09]\rembed pixels-8:  40%|####  | 120/300 [00:02<00:06]"
    (ws.jobs_dir / embed_id / "log.txt").write_text("$ thresher embed\n" + bar)
    assert job_manager.read_job(ws, embed_id).progress.fraction == 0.4
    assert job_manager.job_log_tail(ws, embed_id) == ["$ thresher embed", bar.rsplit("\r", 1)[1]]

