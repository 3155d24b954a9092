"""Runs whose process died: shown as failed (interrupted) everywhere, closed with their rows
deleted; rows of unfinished runs are never read; older ``runs`` tables without the process
columns still read and write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import lance
import numpy as np
import pyarrow as pa
import pytest

from backend.jobs import tracking
from backend.storage import ConflictError, NotFoundError, Workspace, results, runs, schemas
from backend.storage.workspace import utcnow


def write_rows(ws: Workspace, run_id: str) -> None:
    results.write_scores(ws, run_id, ["a", "b"], {"el2n": np.array([0.1, 0.2])})
    results.write_label_issues(ws, run_id, _verdict())
    ws.write_projection(run_id, ["a", "b"], np.zeros((2, 2)))


def _verdict():
    import pandas as pd

    return pd.DataFrame({"id": ["a", "b"], "label_issue_score": [0.1, 0.9], "is_label_issue": [False, True],
                         "suggested_label": [None, "cat"], "detectors": ["", "cl"]})


def owned_rows(ws: Workspace, run_id: str) -> int:
    where = f"run_id = '{run_id}'"
    return sum(len(ws.read(name, where=where)) for name in runs.RUN_OWNED_TABLES if ws.has_table(name))


def set_process(ws: Workspace, run_id: str, **values) -> None:
    ws.table("runs").update(where=f"run_id = '{run_id}'", values=values)


def test_a_killed_process_leaves_a_failed_run_and_no_rows(workspace: Workspace) -> None:
    """The real case: a process starts a run, writes rows and is killed with SIGKILL."""
    script = ("import sys, time, numpy as np; from backend.storage import Workspace, results, runs; "
              "ws = Workspace.open(sys.argv[1]); run_id = runs.start_run(ws, 'score', {}); "
              "results.write_scores(ws, run_id, ['a', 'b'], {'el2n': np.array([0.1, 0.2])}); "
              "print(run_id, flush=True); time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", script, str(workspace.root)], stdout=subprocess.PIPE, text=True)
    run_id = child.stdout.readline().strip()
    assert runs.get_run(workspace, run_id)["status"] == "running"
    with pytest.raises(ConflictError, match="still running: its results show once it finishes"):
        results.read_scores(workspace, run_id)  # its rows exist, and stay invisible
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    child.stdout.close()

    run = runs.get_run(workspace, run_id)
    assert (run["status"], run["error"]) == ("failed", runs.INTERRUPTED)
    listed = runs.list_runs(workspace).set_index("run_id").loc[run_id]
    assert (listed["status"], listed["error"]) == ("failed", runs.INTERRUPTED)
    assert runs.latest_run(workspace, "score", status="failed")["run_id"] == run_id
    assert runs.live_runs(workspace) == []
    assert runs.get_run(workspace, run_id, as_stored=True)["status"] == "running"  # not written yet
    assert owned_rows(workspace, run_id) == 2

    assert runs.close_interrupted(workspace) == [run_id]
    stored = runs.get_run(workspace, run_id, as_stored=True)
    assert (stored["status"], stored["error"]) == ("failed", runs.INTERRUPTED)
    assert owned_rows(workspace, run_id) == 0
    with pytest.raises(NotFoundError, match="failed .interrupted: process ended without finishing. and has no"):
        results.read_scores(workspace, run_id)
    runs.delete_run(workspace, run_id)  # no --force needed
    assert runs.close_interrupted(workspace) == []


def test_a_reused_pid_is_not_the_run_s_process(workspace: Workspace) -> None:
    run_id = runs.start_run(workspace, "score", {})
    run = runs.get_run(workspace, run_id)
    assert (run["pid"], run["host"]) == (os.getpid(), runs.this_host())
    assert run["pid_start"] == runs.process_start(os.getpid())
    write_rows(workspace, run_id)
    set_process(workspace, run_id, pid_start=int(run["pid_start"]) - 1)  # same pid, another process
    assert runs.get_run(workspace, run_id)["status"] == "failed"
    # the next run closes it
    runs.finish_run(workspace, runs.start_run(workspace, "score", {}), {})
    assert runs.get_run(workspace, run_id, as_stored=True)["status"] == "failed"
    assert owned_rows(workspace, run_id) == 0


def test_another_host_s_run_is_judged_by_its_heartbeat(workspace: Workspace, monkeypatch) -> None:
    run_id = runs.start_run(workspace, "score", {})
    set_process(workspace, run_id, host="elsewhere", pid=1, pid_start=1)
    assert runs.get_run(workspace, run_id)["status"] == "running"  # its heartbeat is fresh
    stale = time.time() - runs.STALE_S - 5
    os.utime(runs.heartbeat_path(workspace, run_id), (stale, stale))
    assert runs.get_run(workspace, run_id)["status"] == "failed"
    runs.heartbeat(workspace, run_id)
    assert runs.live_runs(workspace) == [run_id]
    runs.heartbeat_path(workspace, run_id).unlink()  # no heartbeat at all: judged by its age
    assert runs.get_run(workspace, run_id)["status"] == "running"
    monkeypatch.setattr(runs, "STALE_S", -1.0)
    assert runs.get_run(workspace, run_id)["status"] == "failed"


def test_recorded_run_beats_while_it_runs_and_stops_when_done(workspace: Workspace, monkeypatch) -> None:
    monkeypatch.setattr(runs, "HEARTBEAT_S", 0.05)
    with tracking.recorded_run(workspace, "score", {}) as run:
        path = runs.heartbeat_path(workspace, run.run_id)
        first = path.stat().st_mtime_ns
        time.sleep(0.3)
        assert path.stat().st_mtime_ns > first
    assert not path.exists() and runs.get_run(workspace, run.run_id)["status"] == "done"
    with pytest.raises(RuntimeError), tracking.recorded_run(workspace, "score", {}) as failing:
        write_rows(workspace, failing.run_id)
        raise RuntimeError("boom")
    assert owned_rows(workspace, failing.run_id) == 0  # a failed run leaves no rows
    assert not runs.heartbeat_path(workspace, failing.run_id).exists()


def test_readers_read_only_finished_runs(workspace: Workspace) -> None:
    run_id = runs.start_run(workspace, "score", {})
    write_rows(workspace, run_id)
    results.write_collapse(workspace, run_id, [{"source": "probe", "epoch": 0, "metric": "nc1", "class_label": None,
                                                "value": 1.0}])
    for read in (results.read_scores, results.read_label_issues, results.read_collapse):
        with pytest.raises(ConflictError, match="still running"):
            read(workspace, run_id)
    runs.finish_run(workspace, run_id, {})
    assert len(results.read_scores(workspace, run_id)) == 2
    assert len(results.read_label_issues(workspace, run_id)) == 2
    assert len(results.read_collapse(workspace, run_id)) == 1


def old_runs_table(ws: Workspace) -> None:
    """A ``runs`` table as Thresher wrote it before runs recorded their process."""
    old = pa.schema([f for f in schemas.RUNS.schema if f.name not in runs.PROCESS_COLUMNS])
    now = utcnow()
    rows = [{"run_id": "score-20250101-120000-aaaaaa", "kind": "score", "status": "done", "config_json": "{}",
             "created_at": now, "summary_json": "{}"},
            {"run_id": "score-20250101-120001-bbbbbb", "kind": "score", "status": "running", "config_json": "{}",
             "created_at": now}]
    lance.write_dataset(pa.Table.from_pylist(rows, schema=old), ws.lance_dir / "runs.lance")


def test_an_older_runs_table_reads_and_gets_the_columns_on_its_next_run(workspace: Workspace) -> None:
    old_runs_table(workspace)
    listed = runs.list_runs(workspace).set_index("run_id")
    assert listed["pid"].isna().all()
    # a legacy running row has nothing to judge it by: it stays as recorded
    assert listed.loc["score-20250101-120001-bbbbbb", "status"] == "running"
    run_id = runs.start_run(workspace, "project", {})
    schema = workspace.dataset("runs").schema
    assert set(runs.PROCESS_COLUMNS) <= set(schema.names)
    run = runs.get_run(workspace, run_id)
    assert run["pid"] == os.getpid() and run["status"] == "running"
    assert runs.get_run(workspace, "score-20250101-120000-aaaaaa")["status"] == "done"
    runs.finish_run(workspace, run_id, {})
    assert len(runs.list_runs(workspace)) == 3


def test_cli_runs_closes_interrupted_runs(workspace: Workspace, capsys) -> None:
    from backend.cli import main

    run_id = runs.start_run(workspace, "score", {})
    write_rows(workspace, run_id)
    set_process(workspace, run_id, pid_start=-1)
    assert main(["runs", "-w", str(workspace.root)]) == 0
    assert "failed" in capsys.readouterr().out
    assert runs.get_run(workspace, run_id, as_stored=True)["error"] == runs.INTERRUPTED
    assert owned_rows(workspace, run_id) == 0


def test_the_app_map_shows_no_unfinished_projection(workspace: Workspace) -> None:
    from app import data

    run_id = runs.start_run(workspace, "project", {})
    workspace.write_projection(run_id, ["a"], np.zeros((1, 2)))
    with pytest.raises(ConflictError, match="still running"):
        data.projection_points(str(workspace.root), run_id)
    runs.finish_run(workspace, run_id, {})
    assert data.projection_points(str(workspace.root), run_id).empty  # no sample "a": joined away


def test_heartbeat_paths_take_run_ids_only(workspace: Workspace) -> None:
    with pytest.raises(NotFoundError, match="is not a run id"):
        runs.heartbeat_path(workspace, "../../etc")
