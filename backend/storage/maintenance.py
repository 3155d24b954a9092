"""Keeping a workspace's storage bounded: compaction and the cleanup of old table versions.

Every Lance commit leaves a new version behind: a manifest, a transaction file and the data or
deletion files it wrote. A subset save rewrites that subset's rows and a decision appends one
small fragment, so a workspace in daily use grows by every version it ever had (1,140 subset
saves: 39 MB of ``subsets``, 65 MB of ``activity`` versions) while its live rows are a few kB.

What is kept. Only the latest version of a table is ever read: the decisions log is append-only,
so undo and every past decision are *rows* of its latest version; run history is rows of ``runs``;
nothing checks out or restores an old version. So compaction (merging small fragments, dropping
deleted rows) and removing old versions lose nothing. The newest :data:`RETAIN_VERSIONS` versions
of each table stay, so a reader that opened a table a few commits ago still finds its files.

Two ways it runs:

- automatically, by the writers of the busy curation tables (``subsets``, ``activity``,
  ``decisions``): :func:`after_commit`, a version-number check after each commit, compacts and
  cleans up every :data:`AUTO_EVERY` commits. Those writers hold the table's workspace lock
  (:mod:`backend.storage.locks`), so no other writer of the table commits meanwhile;
- on demand, ``thresher maintain -w W`` (:func:`maintain`): every table, under the curation locks;
  refused while a run is live, because job writers (scores, samples, embeddings) take no lock.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from backend.storage import runs, scalar_index
from backend.storage.errors import ConflictError
from backend.storage.locks import workspace_lock
from backend.storage.workspace import Workspace

log = logging.getLogger(__name__)

#: A curation table is compacted and cleaned after every this many commits.
AUTO_EVERY = 50
#: The newest versions of each table that a cleanup keeps.
RETAIN_VERSIONS = 10
#: The tables :func:`after_commit` maintains, each with the workspace lock its writers hold.
LOCK_OF = {"subsets": "subsets", "activity": "subsets", "decisions": "decisions"}


@dataclass(frozen=True)
class TableUpkeep:
    """One table before and after :func:`compact_table`: versions, fragments and bytes on disk."""

    name: str
    versions_before: int
    versions_after: int
    fragments_before: int
    fragments_after: int
    bytes_before: int
    bytes_after: int

    def as_dict(self) -> dict[str, int | str]:
        return asdict(self)


def folder_bytes(path: Path) -> int:
    """Bytes of every file under ``path`` (0 when it does not exist)."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def table_bytes(ws: Workspace, name: str) -> int:
    return folder_bytes(ws.lance_dir / f"{name}.lance")


def compact_table(ws: Workspace, name: str, *, retain_versions: int = RETAIN_VERSIONS) -> TableUpkeep:
    """Merge the table's small fragments (dropping deleted rows), then delete every version but
    the newest ``retain_versions`` and the files only those old versions used. The caller makes
    sure no other process writes the table meanwhile (its lock, or no live run)."""
    if retain_versions < 1:
        raise ValueError(f"retain_versions must be at least 1, not {retain_versions}")
    before = ws.dataset(name)
    versions, fragments, size = len(before.versions()), len(before.get_fragments()), table_bytes(ws, name)
    if fragments > 1 or any(f.deletion_file() is not None for f in before.get_fragments()):
        before.optimize.compact_files(materialize_deletions_threshold=0.0)
    after = ws.dataset(name)
    after.cleanup_old_versions(retain_versions=retain_versions, error_if_tagged_old_versions=False)
    after = ws.dataset(name)
    return TableUpkeep(name, versions, len(after.versions()), fragments, len(after.get_fragments()), size,
                       table_bytes(ws, name))


def after_commit(ws: Workspace, name: str) -> TableUpkeep | None:
    """Called by a writer of ``name`` right after its commit, still holding the table's lock:
    every :data:`AUTO_EVERY`-th version, :func:`compact_table`. The check is one manifest read."""
    if ws.table_version(name) % AUTO_EVERY:
        return None
    upkeep = compact_table(ws, name)
    log.debug("compacted %s: %d -> %d bytes", name, upkeep.bytes_before, upkeep.bytes_after)
    return upkeep


def maintain(ws: Workspace, *, retain_versions: int = RETAIN_VERSIONS,
             index_min_rows: int | None = None) -> list[TableUpkeep]:
    """:func:`compact_table` on every table of ``ws``, the curation tables under their locks; the
    zone maps of the long per-run tables brought up to date before and after (:func:`scalar_index.refresh`,
    built when the table holds ``index_min_rows`` rows, default :data:`scalar_index.MIN_ROWS`).
    Refused (``ConflictError`` naming the runs) while a run is live: its job writes tables that
    take no lock."""
    live = runs.live_runs(ws)
    if live:
        raise ConflictError(f"{len(live)} run(s) still running ({', '.join(live)}); run maintain when they "
                            "finish (the subsets and decisions tables are compacted as they are written)")
    for name in scalar_index.INDEXES:  # Lance merges only fragments of the same index coverage
        scalar_index.refresh(ws, name, min_rows=index_min_rows)
    done = []
    for name in ws.table_names():
        if name in LOCK_OF:
            with workspace_lock(ws, LOCK_OF[name]):
                done.append(compact_table(ws, name, retain_versions=retain_versions))
        else:
            done.append(compact_table(ws, name, retain_versions=retain_versions))
    for name in scalar_index.INDEXES:  # and the rows compaction rewrote
        scalar_index.refresh(ws, name, min_rows=index_min_rows)
    return done
