"""Nearest neighbours of a query vector in one embedding table, through LanceDB's vector search.

Below :data:`INDEX_MIN_VALUES` (rows x dimensions) LanceDB scans every vector: exact, and fast
enough. Above it :func:`ensure_index` builds an IVF_FLAT index on the table (cosine), and the
search then probes :data:`NPROBES` of its partitions; rows added after the index was built are
still scanned exactly (LanceDB searches unindexed fragments in full), and the index is rebuilt
once they pass :data:`STALE_SHARE` of the table.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from backend.storage.errors import NotFoundError
from backend.storage.schemas import embedding_table_name
from backend.storage.workspace import Workspace, sql_string

log = logging.getLogger(__name__)

VECTOR_COLUMN = "embedding"
INDEX_NAME = "embedding_idx"
#: Index an embedding table once rows x dimensions reach this. Exact LanceDB search (top 10,
#: cosine) measured on 2 shared CPU cores: 10k x 64 3.6 ms, 100k x 64 22 ms, 300k x 64 99 ms,
#: 100k x 512 264 ms, 1M x 64 508 ms, i.e. about 5 ms per million values; at 20M values
#: (~300k x 64, ~40k x 512) an exact search takes ~100 ms. An IVF_FLAT index on 1M x 64
#: (200 clusters, 1,000 partitions) took 20 s to build and answers in 13.5 ms with recall@10 =
#: 1.0 at 20 probes; IVF_PQ (8 sub-vectors, refine factor 10) took 45 s, 9 ms, recall@10 = 0.77.
#: Re-measured by ``bench/vector_search.py`` (``bench/results/vector_search.json``; clustered
#: vectors, 32 probes, sqrt(N) partitions, the box loaded 5-8x by other work): exact 100k x 32
#: 9.9 ms, 300k x 32 184 ms, 1M x 32 334 ms, 100k x 512 1.35 s, 300k x 512 4.6 s; indexed 16-47 ms
#: with recall@10 0.84-0.94 at 32-d but 0.37-0.48 at 512-d, after a 6-101 s build. Exact search
#: stays near 0.1-0.2 s up to ~10-20M values and an index costs recall, so the threshold stays.
INDEX_MIN_VALUES = 20_000_000
#: Partitions an indexed search probes.
NPROBES = 32
#: Rebuild the index when this share of the rows was added after it was built.
STALE_SHARE = 0.1


def needs_index(n_rows: int, dim: int) -> bool:
    """Whether a table of ``n_rows`` vectors of ``dim`` values is large enough to index."""
    return n_rows * dim >= INDEX_MIN_VALUES


def embedding_table(ws: Workspace, key: str):
    """The LanceDB table of embedding ``key``; ``NotFoundError`` naming the stored keys when absent."""
    name = embedding_table_name(key)
    if not ws.has_table(name):
        known = ", ".join(ws.embedding_keys()) or "none yet"
        raise NotFoundError(f"no embeddings {key!r} in {ws.root} (stored: {known}); run `thresher embed` first")
    return ws.table(name)


def _dim(table) -> int:
    return table.schema.field(VECTOR_COLUMN).type.list_size


def index_state(ws: Workspace, key: str) -> tuple[int, int] | None:
    """(indexed rows, unindexed rows) of ``key``'s vector index; ``None`` when it has none."""
    table = embedding_table(ws, key)
    if not any(index.name == INDEX_NAME for index in table.list_indices()):
        return None
    stats = table.index_stats(INDEX_NAME)
    return int(stats.num_indexed_rows), int(stats.num_unindexed_rows)


def ensure_index(ws: Workspace, key: str) -> bool:
    """Build (or rebuild, when stale) the vector index of ``key`` if the table is large enough
    (:func:`needs_index`); returns whether an index was built. Tens of seconds at 1M rows: call it
    from a job or the CLI, never from the app's process."""
    from lancedb.index import IvfFlat

    table = embedding_table(ws, key)
    n_rows = table.count_rows()
    if not needs_index(n_rows, _dim(table)):
        return False
    current = index_state(ws, key)
    if current is not None and current[1] <= STALE_SHARE * n_rows:
        return False
    partitions = max(1, int(math.sqrt(n_rows)))
    log.info("building the vector index of %s (%d rows, %d partitions)", key, n_rows, partitions)
    table.create_index(VECTOR_COLUMN, config=IvfFlat(distance_type="cosine", num_partitions=partitions),
                       name=INDEX_NAME, replace=True)
    return True


def vector_of(ws: Workspace, key: str, sample_id: str) -> np.ndarray:
    """The stored unit vector of ``sample_id`` in ``key``; ``NotFoundError`` when it has none."""
    embedding_table(ws, key)
    rows = ws.read(embedding_table_name(key), columns=[VECTOR_COLUMN], where=f"id = {sql_string(sample_id)}")
    if rows.empty:
        known = ws.read("samples", columns=["id"], where=f"id = {sql_string(sample_id)}")
        if known.empty:
            raise NotFoundError(f"no sample {sample_id!r} in this workspace (ids are case-sensitive; the "
                                "sample view, Explore and `thresher export` show them)")
        raise NotFoundError(f"sample {sample_id!r} has no vector in embedding {key!r}: embed it "
                            f"(`thresher embed --workspace {ws.root}`)")
    return np.asarray(rows.iloc[0][VECTOR_COLUMN], dtype=np.float32)


def nearest(ws: Workspace, key: str, query: np.ndarray, *, k: int) -> pd.DataFrame:
    """The ``k`` samples of ``key`` most similar to ``query`` (cosine), most similar first:
    columns id, similarity (1 - cosine distance; 1 for the same direction)."""
    if k < 1:
        raise ValueError(f"the number of results must be at least 1, got {k}")
    table = embedding_table(ws, key)
    query = np.asarray(query, dtype=np.float32).reshape(-1)
    if len(query) != _dim(table):
        raise ValueError(f"the query vector has {len(query)} values, embedding {key!r} has {_dim(table)}")
    found = (table.search(query, vector_column_name=VECTOR_COLUMN).distance_type("cosine")
             .nprobes(NPROBES).select(["id", "_distance"]).limit(k).to_arrow())
    similarity = 1.0 - found.column("_distance").to_numpy().astype(np.float64)
    # rounded before ordering: an index and the exact scan compute a distance with different float
    # rounding, so two near-equal neighbours could swap; ties then go in id order
    hits = pd.DataFrame({"id": found.column("id").to_pylist(), "similarity": np.round(similarity, 4)})
    return hits.sort_values(["similarity", "id"], ascending=[False, True], kind="stable").reset_index(drop=True)
