"""Run records: every computation is stored under a run id together with its config.

A run goes ``running`` -> ``done`` | ``failed``. The app lists, compares and deletes runs from
this table (fiftyone-brain's Config / Results pattern).
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pandas as pd
import pyarrow as pa

from backend.storage import schemas
from backend.storage.errors import ConflictError, NotFoundError
from backend.storage.workspace import Workspace, sql_string, utcnow
from backend.version import code_version

_RUN_ID = re.compile(r"^[a-z]+-[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$")


def _json(text: object) -> dict[str, Any]:
    return json.loads(text) if isinstance(text, str) and text else {}


def new_run_id(kind: str) -> str:
    return f"{kind}-{utcnow():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


def start_run(
    ws: Workspace,
    kind: str,
    config: dict[str, Any],
    *,
    embedding_key: str | None = None,
    seed: int | None = None,
) -> str:
    """Record a new ``running`` run and return its id."""
    run_id = new_run_id(kind)
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
    }
    ws.table("runs").add(pa.Table.from_pylist([row], schema=schemas.RUNS.schema))
    return run_id


def _check(run_id: str) -> str:
    if not _RUN_ID.match(run_id):
        raise NotFoundError(f"{run_id!r} is not a run id (expected e.g. project-20260101-120000-a1b2c3)")
    return run_id


def finish_run(ws: Workspace, run_id: str, summary: dict[str, Any] | None = None) -> None:
    ws.table("runs").update(
        where=f"run_id = {sql_string(_check(run_id))}",
        values={"status": "done", "finished_at": utcnow(), "summary_json": json.dumps(summary or {}, default=str)},
    )


def fail_run(ws: Workspace, run_id: str, error: str) -> None:
    ws.table("runs").update(
        where=f"run_id = {sql_string(_check(run_id))}",
        values={"status": "failed", "finished_at": utcnow(), "error": error[:4000]},
    )


def list_runs(ws: Workspace, kind: str | None = None) -> pd.DataFrame:
    """Runs, newest first, with ``config`` and ``summary`` parsed from JSON."""
    where = f"kind = {sql_string(kind)}" if kind else None
    df = ws.read("runs", where=where)
    df = df.sort_values("created_at", ascending=False, kind="stable").reset_index(drop=True)
    df["config"] = [_json(c) for c in df["config_json"]]
    df["summary"] = [_json(s) for s in df["summary_json"]]
    return df


def get_run(ws: Workspace, run_id: str) -> dict[str, Any]:
    df = ws.read("runs", where=f"run_id = {sql_string(_check(run_id))}")
    if df.empty:
        raise NotFoundError(f"no run {run_id!r} in {ws.root}; `thresher runs --workspace {ws.root}` lists them")
    row = df.iloc[0].to_dict()
    row["config"] = _json(row["config_json"])
    row["summary"] = _json(row["summary_json"])
    return row


def latest_run(ws: Workspace, kind: str, *, status: str = "done") -> dict[str, Any] | None:
    runs = list_runs(ws, kind)
    runs = runs[runs["status"] == status]
    return None if runs.empty else get_run(ws, runs.iloc[0]["run_id"])


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
    where = f"run_id = {sql_string(run_id)}"
    for name in RUN_OWNED_TABLES:
        if ws.has_table(name):
            ws.table(name).delete(where)
    ws.table("runs").delete(where)
