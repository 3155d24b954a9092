"""Storage stays bounded: the curation tables compact themselves every ``AUTO_EVERY`` commits and
``thresher maintain`` compacts every table, removing old versions and never a row."""

from __future__ import annotations

import pandas as pd
import pytest

from backend.cli import main
from backend.storage import ConflictError, Workspace, decisions, maintenance, runs, subsets
from tests.storage.test_workspace import sample_rows


def rows_of(ws: Workspace, name: str) -> pd.DataFrame:
    frame = ws.read(name)
    return frame.sort_values(list(frame.columns[:2])).reset_index(drop=True)


@pytest.fixture
def busy(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """60 subset saves and 30 decisions with compaction every 10 commits."""
    monkeypatch.setattr(maintenance, "AUTO_EVERY", 10)
    workspace.upsert_samples(sample_rows(30))
    for i in range(60):
        subsets.save_subset(workspace, f"n{i % 3}", [f"s{j}" for j in range(i % 7, i % 7 + 20)], overwrite=True)
    for i in range(30):
        decisions.decide(workspace, "tag", [f"s{i}"], tag=f"t{i % 4}")
    return workspace


def test_the_curation_tables_compact_as_they_are_written(busy: Workspace) -> None:
    for name in ("subsets", "activity", "decisions"):
        dataset = busy.dataset(name)
        # without compaction: 61 / 61 / 31 versions and one fragment per commit
        assert len(dataset.versions()) <= maintenance.RETAIN_VERSIONS + 10, name
        assert len(dataset.get_fragments()) <= 11, name
    assert subsets.subset_names(busy) == ["n0", "n1", "n2"]
    assert sorted(subsets.subset_ids(busy, "n2")) == sorted(f"s{j}" for j in range(59 % 7, 59 % 7 + 20))
    assert len(busy.read("activity")) == 60
    log = decisions.read_log(busy)
    assert len(log) == 30 and log["seq"].tolist() == list(range(1, 31))  # every entry, in order


def test_maintain_removes_old_versions_and_keeps_every_row(busy: Workspace, capsys) -> None:
    before = {name: rows_of(busy, name) for name in busy.table_names()}
    size = sum(maintenance.table_bytes(busy, name) for name in before)
    running = runs.start_run(busy, "score", {})
    with pytest.raises(ConflictError, match=f"still running .{running}."):
        maintenance.maintain(busy)
    runs.finish_run(busy, running, {})
    before["runs"] = rows_of(busy, "runs")
    done = maintenance.maintain(busy, retain_versions=1)
    assert {u.name for u in done} == set(busy.table_names())
    assert all(u.versions_after == 1 and u.fragments_after <= 1 for u in done)
    assert sum(maintenance.table_bytes(busy, name) for name in before) < size
    for name, frame in before.items():
        pd.testing.assert_frame_equal(rows_of(busy, name), frame, check_dtype=False)
    assert main(["maintain", "-w", str(busy.root), "--keep-versions", "2"]) == 0
    out = capsys.readouterr().out
    assert "subsets: 1 -> 1 versions" in out and "tables:" in out
    decisions.undo(busy)  # undo works on the compacted log
    assert len(decisions.read_log(busy)) == 31
