"""Named subsets of samples (hand-made selections and pruned subsets) and the decisions log.

Curation is never lost silently: saving over an existing name needs ``overwrite=True``, and a
replacement is one atomic Lance commit (``merge_insert`` with delete-by-source), so a reader or
a crash never sees a half-written subset. Every save and delete is appended to ``decisions``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa

from backend.storage import schemas
from backend.storage.errors import ConflictError, NotFoundError, StorageError
from backend.storage.workspace import Workspace, sql_string, utcnow

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,79}$")


def check_subset_name(name: str) -> str:
    name = (name or "").strip()
    if not _NAME.match(name):
        raise StorageError(
            f"subset name {name!r} is not allowed: use 1-80 letters, digits, spaces, '_', '.', '-', "
            "starting with a letter or digit"
        )
    return name


def log_decision(ws: Workspace, action: str, target: str, n_ids: int, detail: dict[str, Any] | None = None) -> None:
    row = {
        "decided_at": utcnow(),
        "action": action,
        "target": target,
        "n_ids": n_ids,
        "detail_json": json.dumps(detail or {}, default=str),
    }
    ws.table("decisions").add(pa.Table.from_pylist([row], schema=schemas.DECISIONS.schema))


def subset_names(ws: Workspace) -> list[str]:
    tbl = ws.dataset("subsets").to_table(columns=["name"])
    return sorted(set(tbl.column("name").to_pylist()))


def save_subset(
    ws: Workspace,
    name: str,
    ids: Iterable[str],
    *,
    origin: str = "selection",
    run_id: str | None = None,
    overwrite: bool = False,
) -> int:
    """Store ``ids`` under ``name``; returns how many. Unknown ids are refused, not dropped."""
    name = check_subset_name(name)
    ids = list(dict.fromkeys(str(i) for i in ids))
    if not ids:
        raise StorageError(f"subset {name!r} would be empty; select at least one sample")
    unknown = set(ids) - ws.sample_ids()
    if unknown:
        example = ", ".join(sorted(unknown)[:5])
        raise StorageError(f"{len(unknown)} ids are not samples of this workspace (e.g. {example}); nothing saved")
    exists = name in subset_names(ws)
    if exists and not overwrite:
        raise ConflictError(f"a subset named {name!r} exists; choose another name or overwrite it explicitly")
    now = utcnow()
    rows = pa.table(
        {
            "name": [name] * len(ids),
            "id": ids,
            "origin": [origin] * len(ids),
            "run_id": [run_id] * len(ids),
            "created_at": [now] * len(ids),
        },
        schema=schemas.SUBSETS.schema,
    )
    (
        ws.table("subsets")
        .merge_insert(["name", "id"])
        .when_matched_update_all()
        .when_not_matched_insert_all()
        .when_not_matched_by_source_delete(f"name = {sql_string(name)}")
        .execute(rows)
    )
    log_decision(ws, "replace_subset" if exists else "save_subset", name, len(ids), {"origin": origin, "run_id": run_id})
    return len(ids)


def _not_found(ws: Workspace, name: str) -> NotFoundError:
    known = ", ".join(subset_names(ws)) or "none yet"
    return NotFoundError(f"no subset named {name!r} in {ws.root} (saved subsets: {known})")


def subset_ids(ws: Workspace, name: str) -> list[str]:
    tbl = ws.dataset("subsets").to_table(columns=["id"], filter=f"name = {sql_string(name)}")
    ids = tbl.column("id").to_pylist()
    if not ids:
        raise _not_found(ws, name)
    return ids


@dataclass(frozen=True)
class SubsetRecord:
    """One saved subset in one read: its ``ids``, ``origin`` (prune, selection, ...), the
    ``run_id`` that made it, and ``saved_at`` (its last save, as :func:`list_subsets` prints
    ``created_at``)."""

    name: str
    ids: list[str]
    origin: str
    run_id: str | None
    saved_at: str


def subset_record(ws: Workspace, name: str) -> SubsetRecord:
    rows = ws.read("subsets", columns=["id", "origin", "run_id", "created_at"], where=f"name = {sql_string(name)}")
    if rows.empty:
        raise _not_found(ws, name)
    first = rows.iloc[0]
    return SubsetRecord(name, rows["id"].tolist(), first["origin"], first["run_id"] or None,
                        str(rows["created_at"].max()))


def list_subsets(ws: Workspace) -> pd.DataFrame:
    """One row per subset: name, n, origin, run_id, created_at."""
    df = ws.read("subsets", columns=["name", "origin", "run_id", "created_at"])
    if df.empty:
        return pd.DataFrame(columns=["name", "n", "origin", "run_id", "created_at"])
    out = df.groupby("name", as_index=False).agg(
        n=("origin", "size"), origin=("origin", "first"), run_id=("run_id", "first"), created_at=("created_at", "max")
    )
    return out.sort_values("created_at", ascending=False).reset_index(drop=True)


def delete_subset(ws: Workspace, name: str) -> int:
    n = len(subset_ids(ws, name))
    ws.table("subsets").delete(f"name = {sql_string(name)}")
    log_decision(ws, "delete_subset", name, n)
    return n
