"""The read side: an in-memory DuckDB connection over the workspace's Lance tables.

DuckDB scans Lance datasets directly (they are Arrow datasets), so the app gets SQL over the
tables the workers write, without a DuckDB database file and so without DuckDB's single-process
file lock. Each query re-opens the datasets at their latest version: a query sees every commit
made before it started and nothing half-written.

User input only reaches SQL as bound ``?`` parameters; table and column names come from the
schemas (allow-lists), never from the user.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from backend.storage import schemas
from backend.storage.workspace import Workspace


class QueryEngine:
    """``sql()`` over every table of one workspace, each registered as a view of its own name."""

    def __init__(self, ws: Workspace):
        self.ws = ws
        self._con = duckdb.connect(":memory:")

    def sql(self, query: str, params: list[Any] | dict[str, Any] | None = None) -> pd.DataFrame:
        for name in set(self.ws.table_names()) | set(schemas.FIXED_TABLES):
            self._con.register(name, self.ws.dataset(name))
        return self._con.sql(query, params=params or None).to_arrow_table().to_pandas()

    def sql_arrow(self, query: str, params: list[Any] | None = None, *,
                  frames: Mapping[str, pa.Table] | None = None) -> pa.Table:
        """:meth:`sql` as an Arrow table (no pandas rows). ``frames``: in-memory Arrow tables the
        caller built (cached columns, a list of ids), registered under their names for this query
        only; their names come from code, never from the user."""
        for name in set(self.ws.table_names()) | set(schemas.FIXED_TABLES):
            self._con.register(name, self.ws.dataset(name))
        for name, frame in (frames or {}).items():
            self._con.register(name, frame)
        try:
            return self._con.sql(query, params=params or None).to_arrow_table()
        finally:
            for name in frames or {}:
                self._con.unregister(name)

    def close(self) -> None:
        self._con.close()


def class_counts(q: QueryEngine) -> pd.DataFrame:
    return q.sql("SELECT label, count(*) AS n FROM samples GROUP BY label ORDER BY label")


def split_counts(q: QueryEngine) -> pd.DataFrame:
    return q.sql(
        "SELECT coalesce(nullif(split, ''), '(none)') AS split, count(*) AS n FROM samples GROUP BY 1 ORDER BY 1"
    )


def label_by_split(q: QueryEngine) -> pd.DataFrame:
    return q.sql(
        "SELECT label, coalesce(nullif(split, ''), '(none)') AS split, count(*) AS n "
        "FROM samples GROUP BY 1, 2 ORDER BY 1, 2"
    )


def embedding_counts(q: QueryEngine) -> pd.DataFrame:
    """One row per embedding model: key, dimension, number of vectors."""
    rows = []
    for key in q.ws.embedding_keys():
        ds = q.ws.dataset(schemas.embedding_table_name(key))
        rows.append({"model": key, "dim": ds.schema.field("embedding").type.list_size, "vectors": ds.count_rows()})
    return pd.DataFrame(rows, columns=["model", "dim", "vectors"])


POINT_COLUMNS = ("id", "x", "y", "label", "split", "path")


def projection_points(q: QueryEngine, run_id: str) -> pd.DataFrame:
    """The 2-D points of one projection run joined with their samples."""
    return q.sql(
        "SELECT p.id, p.x, p.y, s.label, coalesce(nullif(s.split, ''), '(none)') AS split, s.path "
        "FROM projections p JOIN samples s USING (id) WHERE p.run_id = ? ORDER BY p.id",
        [run_id],
    )


# --------------------------------------------------------------------------- the map at scale
# Arrow in, Arrow out: Explore keeps these as NumPy arrays, never as a DataFrame of strings.
# ``map_ids`` is the caller's in-memory table (pos INT, id VARCHAR) of one projection's points:
# the aligned readers return each value with the position of its point in that table.


def map_point_columns(q: QueryEngine, run_id: str) -> pa.Table:
    """id, x, y, label, split of one projection run's points, in the scan's order."""
    return q.sql_arrow(
        "SELECT p.id, p.x, p.y, s.label, coalesce(nullif(s.split, ''), '(none)') AS split "
        "FROM projections p JOIN samples s USING (id) WHERE p.run_id = ?",
        [run_id],
    )


def aligned_score(q: QueryEngine, run_id: str, name: str, map_ids: pa.Table) -> pa.Table:
    """pos, value: score ``name`` of score run ``run_id`` for each point of ``map_ids`` that has it."""
    return q.sql_arrow(
        "SELECT m.pos, c.value FROM scores c JOIN map_ids m USING (id) WHERE c.run_id = ? AND c.name = ?",
        [run_id, name], frames={"map_ids": map_ids},
    )


def aligned_label_issues(q: QueryEngine, run_id: str, map_ids: pa.Table) -> pa.Table:
    """pos, label_issue_score, is_label_issue, suggested_label of score run ``run_id``."""
    return q.sql_arrow(
        "SELECT m.pos, v.label_issue_score, v.is_label_issue, v.suggested_label "
        "FROM label_issues v JOIN map_ids m USING (id) WHERE v.run_id = ?",
        [run_id], frames={"map_ids": map_ids},
    )


def aligned_ids(q: QueryEngine, ids: pa.Table, map_ids: pa.Table) -> pa.Table:
    """pos and every column of ``ids`` (an in-memory table with an ``id`` column) for its ids on the map."""
    return q.sql_arrow("SELECT m.pos, i.* EXCLUDE (id) FROM given_ids i JOIN map_ids m USING (id)",
                       frames={"given_ids": ids, "map_ids": map_ids})


def map_filter_positions(q: QueryEngine, where: str, params: list[Any], columns: pa.Table) -> pa.Table:
    """pos of the rows of ``columns`` (an in-memory table of a map's columns, one row per point)
    that satisfy ``where``: SQL the caller built from its own allow-listed column names, with
    every user value a bound ``?`` in ``params``."""
    return q.sql_arrow(f"SELECT pos FROM map_columns WHERE {where} ORDER BY pos", params,
                       frames={"map_columns": columns})


def sample_paths(q: QueryEngine, ids: pa.Table) -> pa.Table:
    """pos, path of the samples whose ids are in ``ids`` (an in-memory table of pos, id)."""
    return q.sql_arrow("SELECT i.pos, s.path FROM samples s JOIN given_ids i USING (id)", frames={"given_ids": ids})


def score_names(q: QueryEngine, run_id: str) -> list[str]:
    """The names of the scores score run ``run_id`` stored, sorted (the wide frame's columns)."""
    names = q.sql_arrow("SELECT DISTINCT name FROM scores WHERE run_id = ? ORDER BY name", [run_id])
    return names.column("name").to_pylist()

