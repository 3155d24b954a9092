"""The read side: an in-memory DuckDB connection over the workspace's Lance tables.

DuckDB scans Lance datasets directly (they are Arrow datasets), so the app gets SQL over the
tables the workers write, without a DuckDB database file and so without DuckDB's single-process
file lock. Each query re-opens the datasets at their latest version: a query sees every commit
made before it started and nothing half-written.

User input only reaches SQL as bound ``?`` parameters; table and column names come from the
schemas (allow-lists), never from the user.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pandas as pd

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
