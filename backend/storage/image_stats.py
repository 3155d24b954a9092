"""The ``image_stats`` table: each image's pixel statistics, written by ingest, read by the health stage.

Schema and meaning: :data:`backend.storage.schemas.IMAGE_STATS`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from backend.storage import schemas
from backend.storage.workspace import Workspace

#: The statistic columns, in the table's order (that of ``backend.pixel_stats.PIXEL_STAT_NAMES``).
STAT_COLUMNS = tuple(schemas.IMAGE_STATS.columns[2:])


def write_image_stats(ws: Workspace, ids: Sequence[str], content_hashes: Sequence[str], stats: np.ndarray) -> None:
    """Insert or replace (matched on ``id``) the statistics ``stats`` (N, len(STAT_COLUMNS)) of
    the files ``content_hashes`` (N,) of samples ``ids`` (N,), in one commit."""
    stats = np.asarray(stats, dtype=np.float64)
    if stats.shape != (len(ids), len(STAT_COLUMNS)) or len(content_hashes) != len(ids):
        raise ValueError(f"image stats of shape {stats.shape} for {len(ids)} ids and {len(content_hashes)} hashes; "
                         f"expected ({len(ids)}, {len(STAT_COLUMNS)})")
    if not len(ids):
        return
    columns = [pa.array(list(ids), pa.string()), pa.array(list(content_hashes), pa.string())]
    columns += [pa.array(stats[:, j]) for j in range(len(STAT_COLUMNS))]
    rows = pa.table(columns, schema=schemas.IMAGE_STATS.schema)
    ws.table("image_stats").merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(rows)


def read_image_stats(ws: Workspace, ids: Sequence[str],
                     content_hashes: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """(N, len(STAT_COLUMNS)) float64 statistics of samples ``ids`` in that order, NaN rows where
    none is stored for that sample's current file (``content_hashes[i]``, the samples table's;
    None matches nothing), and a (N,) bool mask of the rows found."""
    n = len(ids)
    out = np.full((n, len(STAT_COLUMNS)), np.nan)
    found = np.zeros(n, dtype=bool)
    if not n or not ws.has_table("image_stats"):
        return out, found
    table = ws.dataset("image_stats").to_table()
    if not table.num_rows:
        return out, found
    position = pc.index_in(table.column("id"), value_set=pa.array(list(ids), pa.string())).fill_null(-1)
    position = position.to_numpy().astype(np.int64)  # where each stored row's id is in ``ids``, -1: not asked
    rows = np.flatnonzero(position >= 0)
    at = position[rows]
    wanted = np.asarray([h if isinstance(h, str) else "" for h in content_hashes], dtype=object)
    stored_hash = np.asarray(table.column("content_hash").to_pylist(), dtype=object)[rows]
    current = stored_hash == wanted[at]
    rows, at = rows[current], at[current]
    for j, name in enumerate(STAT_COLUMNS):
        out[at, j] = table.column(name).to_numpy()[rows]
    found[at] = True
    return out, found
