"""Score, label-issue and neural-collapse results, stored per run.

Scores are kept long (run_id, id, name, value) so a new scorer needs no schema change; readers
pivot them to one column per score. Readers return the rows of ``done`` runs only
(:func:`backend.storage.runs.require_done`): a score job writes its tables one commit at a time,
and a reader must not show the first tables of a run whose last ones never come.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from backend.storage import scalar_index, schemas
from backend.storage.runs import require_done
from backend.storage.workspace import Workspace, sql_string


def write_scores(ws: Workspace, run_id: str, ids: Sequence[str], scores: Mapping[str, np.ndarray], *,
                 index_min_rows: int | None = None) -> None:
    """One commit with every score of one run; each array has one value per id.

    Rows are grouped by score name, ids in the given order within each: that grouping is what
    lets the table's zone maps (:mod:`backend.storage.scalar_index`, built once the table holds
    ``index_min_rows`` rows, default :data:`~backend.storage.scalar_index.MIN_ROWS`) skip every
    other run and score when one (run, score) is read. The constant and repeated columns are
    built with Arrow ``take`` from one small array, not as Python lists of N strings per score.
    """
    n = len(ids)
    names = list(scores)
    if not names:
        return
    values = []
    for name in names:
        column = np.asarray(scores[name], dtype=np.float64).reshape(-1)
        if column.size != n:
            raise ValueError(f"score {name!r} has {column.size} values for {n} samples")
        values.append(column)
    id_array = pa.array(list(ids), pa.string())
    m = len(names)
    table = pa.table(
        {
            "run_id": pa.array([run_id], pa.string()).take(pa.array(np.zeros(n * m, np.int64))),
            "id": pa.concat_arrays([id_array] * m) if m > 1 else id_array,
            "name": pa.array(names, pa.string()).take(pa.array(np.repeat(np.arange(m), n))),
            "value": np.concatenate(values),
        },
        schema=schemas.SCORES.schema,
    )
    ws.table("scores").add(table)
    scalar_index.refresh_after_write(ws, "scores", min_rows=index_min_rows)


def read_scores(ws: Workspace, run_id: str) -> pd.DataFrame:
    """Wide frame: ``id`` plus one column per score name, for one finished run."""
    require_done(ws, run_id)
    long = ws.read("scores", columns=["id", "name", "value"], where=f"run_id = {sql_string(run_id)}")
    if long.empty:
        return pd.DataFrame(columns=["id"])
    wide = long.pivot(index="id", columns="name", values="value")
    wide.columns.name = None
    return wide.reset_index()


def read_scores_of(ws: Workspace, run_id: str, ids: Sequence[str]) -> tuple[pa.Table, pa.Table]:
    """The rows of one finished run for the samples ``ids`` only: (id, name, value) of every
    score and (id, label_issue_score, is_label_issue, suggested_label) of the verdict. A lookup
    through the ``id`` indexes where the tables have them (:mod:`backend.storage.scalar_index`),
    so a sample view at a million samples reads a few rows, not the run."""
    require_done(ws, run_id)
    chosen = ", ".join(sql_string(str(i)) for i in dict.fromkeys(ids))
    where = f"run_id = {sql_string(run_id)} AND id IN ({chosen})" if chosen else "false"
    scores = ws.dataset("scores").to_table(columns=["id", "name", "value"], filter=where)
    verdict = ws.dataset("label_issues").to_table(
        columns=["id", "label_issue_score", "is_label_issue", "suggested_label"], filter=where)
    return scores, verdict


def read_score(ws: Workspace, run_id: str, name: str) -> pa.Table:
    """id, value of score ``name`` of one finished run (no rows when the run lacks that score): one
    (run, score) slice, read through the zone maps where the table has them."""
    require_done(ws, run_id)
    where = f"run_id = {sql_string(run_id)} AND name = {sql_string(name)}"
    return ws.dataset("scores").to_table(columns=["id", "value"], filter=where)


def write_label_issues(ws: Workspace, run_id: str, frame: pd.DataFrame, *, index_min_rows: int | None = None) -> None:
    """``frame`` has id, label_issue_score, is_label_issue, suggested_label, detectors. The table's
    run_id zone map is built or updated as for :func:`write_scores`."""
    table = pa.Table.from_pandas(frame.assign(run_id=run_id)[schemas.LABEL_ISSUES.columns],
                                 schema=schemas.LABEL_ISSUES.schema, preserve_index=False)
    ws.table("label_issues").add(table)
    scalar_index.refresh_after_write(ws, "label_issues", min_rows=index_min_rows)


def read_label_issues(ws: Workspace, run_id: str) -> pd.DataFrame:
    """id, label_issue_score, is_label_issue, suggested_label, detectors of one finished run."""
    require_done(ws, run_id)
    cols = [c for c in schemas.LABEL_ISSUES.columns if c != "run_id"]
    return ws.read("label_issues", columns=cols, where=f"run_id = {sql_string(run_id)}")


def write_collapse(ws: Workspace, run_id: str, rows: Sequence[Mapping]) -> None:
    """Rows of (source, epoch, metric, class_label, value)."""
    if rows:
        table = pa.Table.from_pylist([{**r, "run_id": run_id} for r in rows], schema=schemas.COLLAPSE.schema)
        ws.table("collapse").add(table)


def read_collapse(ws: Workspace, run_id: str) -> pd.DataFrame:
    """source, epoch, metric, class_label, value of one finished run."""
    require_done(ws, run_id)
    cols = [c for c in schemas.COLLAPSE.columns if c != "run_id"]
    return ws.read("collapse", columns=cols, where=f"run_id = {sql_string(run_id)}")
