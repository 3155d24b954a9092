"""Named subsets of samples (hand-made selections and pruned subsets) and their activity log.

Curation is never lost silently: saving over an existing name needs ``overwrite=True``, and a
replacement is one atomic Lance commit (``merge_insert`` with delete-by-source), so a reader or
a crash never sees a half-written subset; a rename is one commit too. Writers (save, rename,
delete) hold the workspace lock ``subsets`` (:mod:`backend.storage.locks`) from the name check to
the commit, so two processes saving the same new name at once leave one subset and one
``ConflictError``, never the union of both; every :data:`maintenance.AUTO_EVERY` commits the
writer compacts the table (:func:`backend.storage.maintenance.after_commit`). Every save, rename and
delete is appended to ``activity`` (the per-sample label decisions have their own log:
:mod:`backend.storage.decisions`). Two subsets (or two prune runs' kept sets) are compared by
:func:`compare_memberships`: counts in both / one only, Jaccard, and per class.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from backend.storage import maintenance, schemas
from backend.storage.errors import ConflictError, NotFoundError, StorageError
from backend.storage.locks import workspace_lock
from backend.storage.workspace import Workspace, sql_string, utcnow

#: The workspace lock every writer of ``subsets`` (and of its ``activity`` log) holds.
LOCK = "subsets"

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
    """Append one entry to ``activity``; the caller holds :data:`LOCK`."""
    row = {
        "decided_at": utcnow(),
        "action": action,
        "target": target,
        "n_ids": n_ids,
        "detail_json": json.dumps(detail or {}, default=str),
    }
    ws.table("activity").add(pa.Table.from_pylist([row], schema=schemas.ACTIVITY.schema))
    maintenance.after_commit(ws, "activity")


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
    with workspace_lock(ws, LOCK):  # the name is checked where it is committed
        exists = name in subset_names(ws)
        if exists and not overwrite:
            raise ConflictError(f"a subset named {name!r} exists; choose another name or overwrite it explicitly")
        (
            ws.table("subsets")
            .merge_insert(["name", "id"])
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .when_not_matched_by_source_delete(f"name = {sql_string(name)}")
            .execute(rows)
        )
        maintenance.after_commit(ws, "subsets")
        log_decision(ws, "replace_subset" if exists else "save_subset", name, len(ids),
                     {"origin": origin, "run_id": run_id})
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
    with workspace_lock(ws, LOCK):
        n = len(subset_ids(ws, name))
        ws.table("subsets").delete(f"name = {sql_string(name)}")
        maintenance.after_commit(ws, "subsets")
        log_decision(ws, "delete_subset", name, n)
    return n


def rename_subset(ws: Workspace, old: str, new: str) -> int:
    """Rename subset ``old`` to ``new``; returns its size. One Lance commit (an update of the
    ``name`` column), so a reader sees the subset under one name or the other, never both. Refused
    before anything is written when ``old`` is not saved, ``new`` is not a valid name, is ``old``
    itself, or names a saved subset (checked under the writers' lock, where it is committed)."""
    new = check_subset_name(new)
    with workspace_lock(ws, LOCK):
        n = len(subset_ids(ws, old))
        if new == old:
            raise StorageError(f"subset {old!r} already has that name; type another one")
        if new in subset_names(ws):
            raise ConflictError(f"a subset named {new!r} exists; choose another name or delete that subset first")
        ws.table("subsets").update(where=f"name = {sql_string(old)}", values={"name": new})
        maintenance.after_commit(ws, "subsets")
        log_decision(ws, "rename_subset", new, n, {"from": old})
    return n


def agreement(in_a: np.ndarray, in_b: np.ndarray, what: str) -> dict[str, Any]:
    """Two boolean memberships over the same samples: ``<what>_a``, ``<what>_b``,
    ``<what>_by_both``, ``only_a``, ``only_b`` and the Jaccard index of the two sets (1 when both
    are empty; None when there is no sample at all: nothing to agree on)."""
    both, union = int((in_a & in_b).sum()), int((in_a | in_b).sum())
    jaccard = None if not in_a.size else (both / union if union else 1.0)
    return {f"{what}_a": int(in_a.sum()), f"{what}_b": int(in_b.sum()), f"{what}_by_both": both,
            "only_a": int((in_a & ~in_b).sum()), "only_b": int((~in_a & in_b).sum()), "jaccard": jaccard}  # fmt: skip


def compare_memberships(
    ws: Workspace, ids_a: Iterable[str], ids_b: Iterable[str], what: str
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Two sets of sample ids over the workspace's samples: :func:`agreement`'s counts, and per
    class (the given label) ``class``, ``<what>_a``, ``<what>_b``, ``<what>_by_both``."""
    labels = ws.samples(columns=["id", "label"])
    in_a, in_b = labels["id"].isin(set(ids_a)), labels["id"].isin(set(ids_b))
    counts = agreement(in_a.to_numpy(), in_b.to_numpy(), what)
    columns = [f"{what}_a", f"{what}_b", f"{what}_by_both"]
    per_class = (labels.assign(**dict(zip(columns, (in_a, in_b, in_a & in_b), strict=True)))
                 .groupby("label", as_index=False)[columns].sum()
                 .rename(columns={"label": "class"}))  # fmt: skip
    return counts, per_class


@dataclass(frozen=True)
class SubsetComparison:
    """Subsets ``a`` and ``b``: ``counts`` (n_a, n_b, n_by_both, only_a, only_b, jaccard) and
    ``by_class`` (class, n_a, n_b, n_by_both; one row per class of the workspace)."""

    a: str
    b: str
    counts: dict[str, Any]
    by_class: pd.DataFrame


def compare_subsets(ws: Workspace, a: str, b: str) -> SubsetComparison:
    """How far two saved subsets agree (:func:`compare_memberships`); refuses one subset twice
    and names the saved subsets when either is unknown."""
    if a == b:
        raise StorageError(f"pick two different subsets to compare (both are {a!r})")
    counts, by_class = compare_memberships(ws, subset_ids(ws, a), subset_ids(ws, b), "n")
    return SubsetComparison(a, b, counts, by_class)


def comparison_report(cmp: SubsetComparison) -> str:
    """The comparison as text (``thresher subsets --compare``)."""
    c = cmp.counts
    jaccard = "n/a" if c["jaccard"] is None else f"{c['jaccard']:.3f}"
    lines = [f"subsets  a = {cmp.a!r}  b = {cmp.b!r}",
             f"samples: a {c['n_a']}, b {c['n_b']}, both {c['n_by_both']}, only a {c['only_a']}, "
             f"only b {c['only_b']}; Jaccard {jaccard}", "", "per class:",
             cmp.by_class.to_string(index=False)]  # fmt: skip
    return "\n".join(lines)
