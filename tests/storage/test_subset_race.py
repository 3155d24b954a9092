"""Two or more processes saving or renaming to the same new subset name at once: one wins, the
others get the usual "exists" ConflictError, and the subset holds the winner's ids only."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

from backend.storage import ConflictError, Workspace, subsets
from tests.storage.test_workspace import sample_rows

ROUNDS = 20
WRITERS = 3
IDS_PER_WRITER = 3


def _writer(root: str, k: int, barrier, outcomes) -> None:
    ws = Workspace.open(root)
    ids = [f"s{k * IDS_PER_WRITER + i}" for i in range(IDS_PER_WRITER)]
    for r in range(ROUNDS):
        barrier.wait(timeout=60)
        action = "save" if r % 2 == 0 else "rename"
        try:
            if action == "save":
                subsets.save_subset(ws, f"round {r}", ids)
            else:  # every writer renames its own subset to the one new name
                subsets.rename_subset(ws, f"own {k}-{r}", f"round {r}")
            outcomes.put((r, k, "ok"))
        except ConflictError as exc:
            outcomes.put((r, k, "exists" if "exists" in str(exc) else str(exc)))


def test_racing_writers_of_one_new_name_leave_one_winner(tmp_path: Path) -> None:
    ws = Workspace.open(tmp_path / "ws", create=True)
    ws.upsert_samples(sample_rows(WRITERS * IDS_PER_WRITER))
    for k in range(WRITERS):
        for r in range(1, ROUNDS, 2):
            subsets.save_subset(ws, f"own {k}-{r}", [f"s{k * IDS_PER_WRITER + i}" for i in range(IDS_PER_WRITER)])
    n_logged = len(ws.read("activity"))
    ctx = mp.get_context("spawn")
    barrier, outcomes = ctx.Barrier(WRITERS), ctx.Queue()
    writers = [ctx.Process(target=_writer, args=(str(ws.root), k, barrier, outcomes)) for k in range(WRITERS)]
    for process in writers:
        process.start()
    results = [outcomes.get(timeout=120) for _ in range(ROUNDS * WRITERS)]
    for process in writers:
        process.join(timeout=60)
        assert process.exitcode == 0

    for r in range(ROUNDS):
        got = sorted((outcome, k) for rr, k, outcome in results if rr == r)
        winners = [k for outcome, k in got if outcome == "ok"]
        assert len(winners) == 1 and all(o in ("ok", "exists") for o, _ in got), (r, got)
        stored = subsets.subset_ids(ws, f"round {r}")
        expected = [f"s{winners[0] * IDS_PER_WRITER + i}" for i in range(IDS_PER_WRITER)]
        assert sorted(stored) == expected, (r, stored)  # the winner's ids, each once
    # one activity entry per successful save or rename, none for a refused one
    assert len(ws.read("activity")) == n_logged + ROUNDS
