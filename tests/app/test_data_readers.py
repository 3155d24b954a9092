"""``app.data.cached_reader``: a reader's cache key comes from the tables it declares, and no two
readers share a cache."""

from __future__ import annotations

from pathlib import Path

from app import data
from backend.storage import Workspace, runs, subsets
from backend.storage.schemas import embedding_table_name
from tests.app.app_testkit import EMBEDDING_KEY


def test_a_reader_reads_again_only_after_a_commit_to_a_table_it_declares(writable_workspace: Path) -> None:
    root = str(writable_workspace)
    ws = Workspace.open(root)
    ids = sorted(ws.sample_ids())
    subsets.subset_names(ws)  # the first read creates the empty table: a commit
    calls: list[str] = []

    @data.cached_reader("subsets", max_entries=4)
    def subset_count(root: str) -> int:
        calls.append(root)
        return len(subsets.subset_names(data.open_workspace(root)))

    @data.cached_reader("subsets", max_entries=4)
    def subset_names(root: str) -> list[str]:  # same declaration and arguments, another cache
        return subsets.subset_names(data.open_workspace(root))

    assert subset_count(root) == 0 and subset_count(root) == 0 and len(calls) == 1
    assert subset_names(root) == []
    run_id = runs.start_run(ws, "score", {})  # a table it does not read: still cached
    runs.finish_run(ws, run_id, {})
    assert subset_count(root) == 0 and len(calls) == 1
    subsets.save_subset(ws, "two", ids[:2])  # as another session or the CLI would
    assert subset_count(root) == 1 and len(calls) == 2
    assert subset_names(root) == ["two"]


def test_declarations_expand_to_tables(app_workspace: Path) -> None:
    root = str(app_workspace)
    manifest_tables = data.tables_read(data.manifest, root)
    assert data.tables_read(data.export_bytes, root)[: len(manifest_tables)] == manifest_tables  # a reader's tables
    assert data.tables_read(data._points_with_score, root) == ("projections", "samples", "scores", "label_issues")
    assert data.tables_read(data.embedding_counts, root) == (embedding_table_name(EMBEDDING_KEY),)
    assert "subsets" in data.tables_read(data.run_comparison, root)  # prune runs' kept sets
