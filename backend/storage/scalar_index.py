"""Scalar indexes on the long per-run tables, so that one run's rows, one score of one run, or
the scores of a few samples are read without scanning the whole table.

Why. ``scores`` is long (run_id, id, name, value): one row per sample and score, ~21 rows per
sample, so 21M rows at 1M samples, and Explore reads one (run_id, name) slice of it to colour
the map by a score. ``label_issues`` is read per run the same way (one row per sample and run).

Which index. ``ZONEMAP`` on the filtered columns: it prunes a slice read about as well as
``BITMAP``, builds an order of magnitude faster and is a few kB; ``BTREE`` is slow to build and
no faster for a slice this large (``bench/results/scores_read.json`` has the measurements).
A zone map keeps min/max per zone of 8,192 rows; it is inexact, so Lance re-checks the filter in
the zones it keeps and the answer is always exact. It prunes only where equal values sit
together, and they do here: :func:`backend.storage.results.write_scores` writes one run in one
commit with its rows grouped by score name, and compaction keeps row order.

The scores of a few samples (a sample view, a page of search results) are a lookup by ``id``
across every score: zone maps cannot prune that (each id is in every name's zones), so
``scores.id`` and ``label_issues.id`` get a ``BTREE`` index: at 1M samples (28M score rows) it
builds in about 8 s and answers a few ids in about 0.1 s, where the scan takes 1.4 s through
Lance and 6 s as a DuckDB join.

Keeping it valid. Rows appended after the index was built are not in it (Lance then scans them
too: still exact, slower), and compaction rewrites fragments so the index no longer covers them;
:func:`refresh` adds what the index misses. The writers call it after each commit and
``thresher maintain`` before compacting (Lance merges only fragments that the index covers
alike) and after. Explore's colouring reads through DuckDB, whose scan of the Lance dataset
pushes the filter down and so uses the index too (``queries.aligned_score``). Below
:data:`MIN_ROWS` rows a full scan is already fast and no index is built.
"""

from __future__ import annotations

import logging

from backend.storage.workspace import Workspace

log = logging.getLogger(__name__)

#: (column, Lance index type) of each long per-run table: the columns its readers filter on.
INDEXES: dict[str, tuple[tuple[str, str], ...]] = {
    "scores": (("run_id", "ZONEMAP"), ("name", "ZONEMAP"), ("id", "BTREE")),
    "label_issues": (("run_id", "ZONEMAP"), ("id", "BTREE")),
}
#: A table gets its indexes from this many rows on: a 50k-sample score run (~1M score rows).
MIN_ROWS = 1_000_000


def index_name(column: str, kind: str = "ZONEMAP") -> str:
    """The name of the ``kind`` index on ``column``."""
    return f"{column}_{kind.lower()}"


def refresh(ws: Workspace, name: str, *, min_rows: int | None = None) -> list[str]:
    """Build the indexes of table ``name`` (:data:`INDEXES`) once it holds at least
    ``min_rows`` rows (:data:`MIN_ROWS` when None), and add to existing ones the rows they do not
    cover yet (appended or compacted since). Returns the names of the indexes built or updated;
    nothing for a table without indexes, a missing table or a small one."""
    columns = INDEXES.get(name, ())
    if not columns or not ws.has_table(name):
        return []
    dataset = ws.dataset(name)
    if dataset.count_rows() < (MIN_ROWS if min_rows is None else min_rows):
        return []
    existing = {index.name for index in dataset.describe_indices()}
    built, stale = [], []
    for column, kind in columns:
        wanted = index_name(column, kind)
        if wanted not in existing:
            dataset.create_scalar_index(column, index_type=kind, name=wanted)
            dataset = ws.dataset(name)
            built.append(wanted)
        elif dataset.stats.index_stats(wanted)["num_unindexed_rows"]:
            stale.append(wanted)
    if stale:
        dataset.optimize.optimize_indices(index_names=stale)
    return built + stale


def refresh_after_write(ws: Workspace, name: str, *, min_rows: int | None = None) -> None:
    """:func:`refresh` for a writer that has already committed its rows: a failure is logged, not
    raised, since the rows are stored and every read stays exact without the index (only slower);
    ``thresher maintain`` builds it again."""
    try:
        refresh(ws, name, min_rows=min_rows)
    except Exception as exc:  # noqa: BLE001 - the index only speeds reads up; the write succeeded
        log.warning("could not update the scalar indexes of %s in %s (%s); reads stay exact but scan the "
                    "whole table until `thresher maintain -w %s` rebuilds it", name, ws.root, exc, ws.root)
