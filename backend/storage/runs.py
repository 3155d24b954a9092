"""Run records: every computation is stored under a run id together with its config.

A run goes ``running`` -> ``done`` | ``failed``. The app lists, compares and deletes runs from
this table (fiftyone-brain's Config / Results pattern).

Runs whose process died. A job killed with SIGKILL (or out of memory, or a reboot) cannot mark
its run failed, so every run records who runs it: ``host``, ``pid`` and ``pid_start`` (the
process's start time, so a reused pid is not taken for the job), written with the run's first
row. Its process also touches a heartbeat file, ``W/locks/runs/<run_id>.alive``, every
:data:`HEARTBEAT_S` seconds (``backend.jobs.tracking.recorded_run``). A ``running`` run is
*interrupted* when, on this host, its pid is gone or now belongs to another process, or, seen
from another host (a workspace on a shared folder) or where ``/proc`` is missing, its heartbeat
is older than :data:`STALE_S`. The heartbeat is a file, not a column: a table update every few
seconds would add a Lance version each time and change the ``runs`` version that the app's
caches are keyed on. Rows written before runs recorded their process (no pid) and with no
heartbeat cannot be judged and stay as recorded (``thresher runs --delete ID --force``).

An interrupted run reads as ``failed`` with :data:`INTERRUPTED` everywhere (:func:`list_runs`,
:func:`get_run`, :func:`latest_run` derive it); :func:`close_interrupted` (run by every new run,
``thresher runs`` and ``thresher maintain``) writes that into the table and deletes its rows.

What readers see. Rows of the tables in :data:`RUN_OWNED_TABLES` are read only for ``done``
runs (:func:`require_done`, called by every reader of those tables): a running run's rows are
invisible until it finishes, and a run that fails or is interrupted leaves none behind
(:func:`fail_run` deletes them).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from backend.storage import schemas
from backend.storage.errors import ConflictError, NotFoundError
from backend.storage.locks import workspace_lock
from backend.storage.workspace import Workspace, sql_string, utcnow
from backend.version import code_version

log = logging.getLogger(__name__)

_RUN_ID = re.compile(r"^[a-z]+-[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$")
#: Seconds between two touches of a running run's heartbeat file.
HEARTBEAT_S = 10.0
#: A heartbeat older than this (seconds) means the run's process is gone (used where the pid
#: cannot be checked: another host, or no ``/proc``).
STALE_S = 120.0
#: The error of a run whose process ended without finishing it.
INTERRUPTED = "interrupted: process ended without finishing"
#: The columns that say which process runs a run (added to an older ``runs`` table on first write).
PROCESS_COLUMNS = ("pid", "pid_start", "host")


def _json(text: object) -> dict[str, Any]:
    return json.loads(text) if isinstance(text, str) and text else {}


def new_run_id(kind: str) -> str:
    return f"{kind}-{utcnow():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


# ------------------------------------------------------------------------------ processes
def process_start(pid: int) -> int | None:
    """The start time of live process ``pid`` (clock ticks since boot), None when it is gone, a
    zombie, or unknowable (no ``/proc``). Field 22 of /proc/<pid>/stat, counted after the
    ``(comm)`` that may hold spaces."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone (FileNotFoundError, ProcessLookupError) or no /proc
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] in ("Z", "X") else int(fields[19])


def this_host() -> str:
    return socket.gethostname()


def heartbeat_path(ws: Workspace, run_id: str) -> Path:
    return ws.locks_dir / "runs" / f"{_check(run_id)}.alive"


def heartbeat(ws: Workspace, run_id: str) -> None:
    """Say that ``run_id``'s process is alive (its heartbeat file's modification time)."""
    path = heartbeat_path(ws, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def _heartbeat_age(ws: Workspace, run_id: str) -> float | None:
    try:
        return time.time() - heartbeat_path(ws, run_id).stat().st_mtime
    except (OSError, NotFoundError):
        return None


def _present(value: object) -> bool:
    return value is not None and not (isinstance(value, float) and value != value) and value is not pd.NA


def process_gone(ws: Workspace, row: dict[str, Any] | pd.Series) -> bool:
    """Whether a ``running`` run's process has ended (module docstring)."""
    if row["status"] != "running":
        return False
    pid, start, host = row.get("pid"), row.get("pid_start"), row.get("host")
    if _present(pid) and _present(start) and host == this_host() and Path("/proc/self/stat").exists():
        return process_start(int(pid)) != int(start)
    age = _heartbeat_age(ws, row["run_id"])
    if age is not None:
        return age > STALE_S
    if not _present(pid):
        return False  # written before runs recorded their process: nothing to judge it by
    started = pd.Timestamp(row["created_at"])
    return (pd.Timestamp(utcnow()) - started).total_seconds() > STALE_S


def _with_process_columns(df: pd.DataFrame) -> pd.DataFrame:
    """A ``runs`` frame from a table written before :data:`PROCESS_COLUMNS`: those as null."""
    for column in PROCESS_COLUMNS:
        if column not in df.columns:
            df[column] = None
    return df


def _derive(ws: Workspace, df: pd.DataFrame) -> pd.DataFrame:
    """Interrupted runs read as ``failed`` with :data:`INTERRUPTED`."""
    df = _with_process_columns(df)
    running = df.index[df["status"] == "running"]
    gone = [i for i in running if process_gone(ws, df.loc[i])]
    if gone:
        df.loc[gone, "status"] = "failed"
        df.loc[gone, "error"] = INTERRUPTED
    return df


def _upgrade_table(ws: Workspace) -> None:
    """Add :data:`PROCESS_COLUMNS` (all null, a metadata-only Lance change) to a ``runs`` table
    written by an older Thresher, once, under the ``runs`` lock."""
    if set(PROCESS_COLUMNS) <= set(ws.dataset("runs").schema.names):
        return
    with workspace_lock(ws, "runs"):
        dataset = ws.dataset("runs")
        missing = [schemas.RUNS.schema.field(c) for c in PROCESS_COLUMNS if c not in dataset.schema.names]
        if missing:
            dataset.add_columns(missing)
            log.info("added %s to the runs table of %s", ", ".join(f.name for f in missing), ws.root)


# ------------------------------------------------------------------------------ lifecycle
def start_run(
    ws: Workspace,
    kind: str,
    config: dict[str, Any],
    *,
    embedding_key: str | None = None,
    seed: int | None = None,
) -> str:
    """Record a new ``running`` run of this process and return its id. Runs of processes that
    have died are closed first (:func:`close_interrupted`)."""
    _upgrade_table(ws)
    close_interrupted(ws)
    run_id = new_run_id(kind)
    pid = os.getpid()
    row = {
        "run_id": run_id,
        "kind": kind,
        "status": "running",
        "config_json": json.dumps(config, sort_keys=True, default=str),
        "embedding_key": embedding_key,
        "seed": seed,
        "code_version": code_version(),
        "created_at": utcnow(),
        "finished_at": None,
        "summary_json": None,
        "error": None,
        "pid": pid,
        "pid_start": process_start(pid),
        "host": this_host(),
    }
    schema = ws.dataset("runs").schema  # the table's column order (an upgraded table's may differ)
    row_table = pa.Table.from_pylist([row], schema=schemas.RUNS.schema).select(schema.names).cast(schema)
    ws.table("runs").add(row_table)
    heartbeat(ws, run_id)
    return run_id


def _check(run_id: str) -> str:
    if not _RUN_ID.match(run_id):
        raise NotFoundError(f"{run_id!r} is not a run id (expected e.g. project-20260101-120000-a1b2c3)")
    return run_id


def _end_heartbeat(ws: Workspace, run_id: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        heartbeat_path(ws, run_id).unlink()


def finish_run(ws: Workspace, run_id: str, summary: dict[str, Any] | None = None) -> None:
    """Mark ``run_id`` done: one commit, after which its rows are visible to readers."""
    ws.table("runs").update(
        where=f"run_id = {sql_string(_check(run_id))}",
        values={"status": "done", "finished_at": utcnow(), "summary_json": json.dumps(summary or {}, default=str)},
    )
    _end_heartbeat(ws, run_id)


def fail_run(ws: Workspace, run_id: str, error: str) -> None:
    """Delete the rows ``run_id`` wrote (:data:`RUN_OWNED_TABLES`), then mark it failed with
    ``error``. Rows first: if this is itself interrupted, the run still reads as running (or
    interrupted) and its rows are deleted again by the next :func:`close_interrupted`."""
    try:
        _delete_rows(ws, _check(run_id))
    finally:
        ws.table("runs").update(
            where=f"run_id = {sql_string(run_id)}",
            values={"status": "failed", "finished_at": utcnow(), "error": error[:4000]},
        )
        _end_heartbeat(ws, run_id)


def close_interrupted(ws: Workspace) -> list[str]:
    """Mark failed (:data:`INTERRUPTED`) every ``running`` run whose process has ended, deleting
    its rows; returns their ids."""
    if not ws.has_table("runs"):
        return []
    with workspace_lock(ws, "runs"):  # one closer at a time
        rows = _with_process_columns(ws.read("runs", where="status = 'running'"))
        gone = [row["run_id"] for _, row in rows.iterrows() if process_gone(ws, row)]
        for run_id in gone:
            log.info("run %s: %s; its rows are deleted", run_id, INTERRUPTED)
            fail_run(ws, run_id, INTERRUPTED)
    return gone


def live_runs(ws: Workspace) -> list[str]:
    """Ids of the runs still running (their process alive, as far as can be told)."""
    if not ws.has_table("runs"):
        return []
    rows = _with_process_columns(ws.read("runs", where="status = 'running'"))
    return [row["run_id"] for _, row in rows.iterrows() if not process_gone(ws, row)]


def list_runs(ws: Workspace, kind: str | None = None) -> pd.DataFrame:
    """Runs, newest first, with ``config`` and ``summary`` parsed from JSON; a run whose process
    ended without finishing it reads as ``failed`` (:data:`INTERRUPTED`)."""
    where = f"kind = {sql_string(kind)}" if kind else None
    df = _derive(ws, ws.read("runs", where=where))
    df = df.sort_values("created_at", ascending=False, kind="stable").reset_index(drop=True)
    df["config"] = [_json(c) for c in df["config_json"]]
    df["summary"] = [_json(s) for s in df["summary_json"]]
    return df


def get_run(ws: Workspace, run_id: str, *, as_stored: bool = False) -> dict[str, Any]:
    """The record of ``run_id``, ``config`` and ``summary`` parsed; an interrupted run reads as
    ``failed`` unless ``as_stored`` (the table's own status, for the code that closes it)."""
    df = ws.read("runs", where=f"run_id = {sql_string(_check(run_id))}")
    if df.empty:
        raise NotFoundError(f"no run {run_id!r} in {ws.root}; `thresher runs --workspace {ws.root}` lists them")
    df = _with_process_columns(df) if as_stored else _derive(ws, df)
    row = df.iloc[0].to_dict()
    row["config"] = _json(row["config_json"])
    row["summary"] = _json(row["summary_json"])
    return row


def latest_run(ws: Workspace, kind: str, *, status: str = "done") -> dict[str, Any] | None:
    runs = list_runs(ws, kind)
    runs = runs[runs["status"] == status]
    return None if runs.empty else get_run(ws, runs.iloc[0]["run_id"])


def require_done(ws: Workspace, run_id: str) -> dict[str, Any]:
    """The record of ``run_id`` when it is ``done``; otherwise ``ConflictError`` (still running:
    its rows show once it finishes) or ``NotFoundError`` (failed: it has no results)."""
    run = get_run(ws, run_id)
    if run["status"] == "running":
        raise ConflictError(f"{run['kind']} run {run_id} is still running: its results show once it finishes")
    if run["status"] != "done":
        reason = str(run["error"] or "no reason recorded").splitlines()[0]
        raise NotFoundError(f"{run['kind']} run {run_id} {run['status']} ({reason}) and has no results; run "
                            f"`thresher {run['kind']}` again, or pick a finished run (`thresher runs -w {ws.root}`)")
    return run


#: Tables whose rows belong to a run (``run_id`` column) and go when the run is deleted.
RUN_OWNED_TABLES = ("projections", "scores", "label_issues", "collapse")


def delete_run(ws: Workspace, run_id: str, *, force: bool = False) -> None:
    """Delete a run and the rows it produced. Subsets made from it are kept: they are curation.

    A ``running`` run is refused unless ``force``: its job would go on writing rows for a run
    that no longer exists. ``force`` is for a run whose process died without marking it failed.
    """
    run = get_run(ws, run_id)
    if run["status"] == "running" and not force:
        started = pd.Timestamp(run["created_at"]).strftime("%Y-%m-%d %H:%M:%S")
        raise ConflictError(
            f"run {run_id} is still running (started {started} UTC); wait for it to finish, or, if its "
            "process has died, delete it with force (thresher runs --delete ID --force)"
        )
    _delete_rows(ws, run_id)
    ws.table("runs").delete(f"run_id = {sql_string(run_id)}")
    _end_heartbeat(ws, run_id)


def _delete_rows(ws: Workspace, run_id: str) -> None:
    where = f"run_id = {sql_string(run_id)}"
    for name in RUN_OWNED_TABLES:
        if ws.has_table(name):
            ws.table(name).delete(where)
