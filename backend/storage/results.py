"""Score, label-issue and neural-collapse results, stored per run.

Scores are kept long (run_id, id, name, value) so a new scorer needs no schema change; readers
pivot them to one column per score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from backend.storage import schemas
from backend.storage.workspace import Workspace, sql_string


def write_scores(ws: Workspace, run_id: str, ids: Sequence[str], scores: Mapping[str, np.ndarray]) -> None:
    """One commit with every score of one run; each array has one value per id."""
    n = len(ids)
    parts = []
    for name, values in scores.items():
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if values.size != n:
            raise ValueError(f"score {name!r} has {values.size} values for {n} samples")
        parts.append(pa.table({"run_id": pa.array([run_id] * n), "id": pa.array(list(ids), pa.string()),
                               "name": pa.array([name] * n), "value": values}, schema=schemas.SCORES.schema))
    if parts:
        ws.table("scores").add(pa.concat_tables(parts))


def read_scores(ws: Workspace, run_id: str) -> pd.DataFrame:
    """Wide frame: ``id`` plus one column per score name, for one run."""
    long = ws.read("scores", columns=["id", "name", "value"], where=f"run_id = {sql_string(run_id)}")
    if long.empty:
        return pd.DataFrame(columns=["id"])
    wide = long.pivot(index="id", columns="name", values="value")
    wide.columns.name = None
    return wide.reset_index()


def write_label_issues(ws: Workspace, run_id: str, frame: pd.DataFrame) -> None:
    """``frame`` has id, label_issue_score, is_label_issue, suggested_label, detectors."""
    table = pa.Table.from_pandas(frame.assign(run_id=run_id)[schemas.LABEL_ISSUES.columns],
                                 schema=schemas.LABEL_ISSUES.schema, preserve_index=False)
    ws.table("label_issues").add(table)


def read_label_issues(ws: Workspace, run_id: str) -> pd.DataFrame:
    cols = [c for c in schemas.LABEL_ISSUES.columns if c != "run_id"]
    return ws.read("label_issues", columns=cols, where=f"run_id = {sql_string(run_id)}")


def write_collapse(ws: Workspace, run_id: str, rows: Sequence[Mapping]) -> None:
    """Rows of (source, epoch, metric, class_label, value)."""
    if rows:
        table = pa.Table.from_pylist([{**r, "run_id": run_id} for r in rows], schema=schemas.COLLAPSE.schema)
        ws.table("collapse").add(table)


def read_collapse(ws: Workspace, run_id: str) -> pd.DataFrame:
    cols = [c for c in schemas.COLLAPSE.columns if c != "run_id"]
    return ws.read("collapse", columns=cols, where=f"run_id = {sql_string(run_id)}")
