"""The zone maps of the long per-run tables: built above a row threshold, kept covering every row
after appends and ``maintain``'s compaction, and never changing what a read returns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backend.storage import Workspace, maintenance, queries, results, runs, scalar_index

N = 5000  # 3 scores x 5,000 ids: 8,192-row zones straddle two score names, so the re-check matters
NAMES = ("el2n", "aum", "is_dark")


def score_run(ws: Workspace, seed: int, **kw) -> tuple[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    scores = {name: rng.random(N) for name in NAMES}
    scores["aum"][::7] = np.nan  # missing values survive the index
    run_id = runs.start_run(ws, "score", {"seed": seed})
    ids = [f"s{i:05d}" for i in rng.permutation(N)]
    results.write_scores(ws, run_id, ids, scores, **kw)
    issues = pd.DataFrame({"id": ids, "label_issue_score": scores["el2n"], "is_label_issue": scores["el2n"] > 0.9,
                           "suggested_label": "cat", "detectors": "knn"})
    results.write_label_issues(ws, run_id, issues, **kw)
    runs.finish_run(ws, run_id, {})
    return run_id, dict(scores, id=np.array(ids))


def unindexed_rows(ws: Workspace, table: str, column: str, kind: str = "ZONEMAP") -> int:
    return ws.dataset(table).stats.index_stats(scalar_index.index_name(column, kind))["num_unindexed_rows"]


def index_names(ws: Workspace, table: str) -> set[str]:
    return {index.name for index in ws.dataset(table).describe_indices()}


def reads(ws: Workspace, run_ids: list[str]) -> dict[tuple[str, str], pd.DataFrame]:
    """Every way the storage layer reads a run's scores, each sorted by id."""
    out: dict[tuple[str, str], pd.DataFrame] = {}
    engine = queries.QueryEngine(ws)
    for run_id in run_ids:
        out[run_id, "wide"] = results.read_scores(ws, run_id).sort_values("id").reset_index(drop=True)
        out[run_id, "issues"] = results.read_label_issues(ws, run_id).sort_values("id").reset_index(drop=True)
        some = sorted(out[run_id, "wide"]["id"])[1::3]  # a few samples, through the id indexes
        long, verdict = results.read_scores_of(ws, run_id, [*some, "no such id"])
        out[run_id, "of ids"] = long.to_pandas().sort_values(["id", "name"]).reset_index(drop=True)
        out[run_id, "issues of ids"] = verdict.to_pandas().sort_values("id").reset_index(drop=True)
        assert sorted(set(out[run_id, "of ids"]["id"])) == some == out[run_id, "issues of ids"]["id"].tolist()
        for name in (*NAMES, "not_a_score"):
            out[run_id, name] = results.read_score(ws, run_id, name).to_pandas().sort_values("id").reset_index(drop=True)
            out[run_id, f"sql {name}"] = engine.sql(
                "SELECT id, value FROM scores WHERE run_id = ? AND name = ? ORDER BY id", [run_id, name])
    engine.close()
    return out


def assert_same(left: dict, right: dict) -> None:
    assert left.keys() == right.keys()
    for key, frame in left.items():
        pd.testing.assert_frame_equal(frame, right[key], check_dtype=False, obj=str(key))


@pytest.fixture
def pair(tmp_path) -> tuple[Workspace, Workspace, list[str], list[dict]]:
    """The same two score runs written twice: indexed from 10 rows on, and with the default
    threshold (these tables stay far below it: no index)."""
    indexed = Workspace.open(tmp_path / "indexed", create=True)
    plain = Workspace.open(tmp_path / "plain", create=True)
    run_ids, written = [], []
    for seed in (1, 2):
        run_id, scores = score_run(indexed, seed, index_min_rows=10)
        plain_id, _ = score_run(plain, seed)
        written.append(scores)
        run_ids.append(run_id)
        # same run ids in both so their reads compare key by key
        plain.table("scores").update(where=f"run_id = '{plain_id}'", values={"run_id": run_id})
        plain.table("label_issues").update(where=f"run_id = '{plain_id}'", values={"run_id": run_id})
        plain.table("runs").update(where=f"run_id = '{plain_id}'", values={"run_id": run_id})
    return indexed, plain, run_ids, written


def test_the_index_is_built_above_the_threshold_only(pair) -> None:
    indexed, plain, _, _ = pair
    assert index_names(indexed, "scores") == {"run_id_zonemap", "name_zonemap", "id_btree"}
    assert index_names(indexed, "label_issues") == {"run_id_zonemap", "id_btree"}
    assert index_names(plain, "scores") == set() and index_names(plain, "label_issues") == set()
    # the second run's append was added to the index by its writer
    assert unindexed_rows(indexed, "scores", "name") == 0 and unindexed_rows(indexed, "scores", "run_id") == 0
    assert unindexed_rows(indexed, "label_issues", "run_id") == 0
    plan = indexed.dataset("scores").scanner(filter="run_id = 'x' AND name = 'el2n'").explain_plan()
    assert "ZoneMap" in plan, plan
    assert unindexed_rows(indexed, "scores", "id", "BTREE") == 0


def test_reads_are_identical_with_and_without_the_index(pair) -> None:
    indexed, plain, run_ids, written = pair
    got = reads(indexed, run_ids)
    assert_same(got, reads(plain, run_ids))
    for run_id, scores in zip(run_ids, written, strict=True):  # and equal to what was written
        order = np.argsort(scores["id"])
        for name in NAMES:
            frame = got[run_id, name]
            assert frame["id"].tolist() == scores["id"][order].tolist()
            np.testing.assert_array_equal(frame["value"].to_numpy(), scores[name][order])
        assert got[run_id, "not_a_score"].empty


def test_maintain_keeps_the_index_covering_every_row(pair) -> None:
    indexed, plain, run_ids, _ = pair
    third, _ = score_run(indexed, 3)  # the default threshold: this writer leaves its rows unindexed
    assert unindexed_rows(indexed, "scores", "name") == 3 * N
    before = reads(indexed, [*run_ids, third])
    runs.delete_run(indexed, run_ids[0])  # deletions, then compaction rewrites the fragments
    maintenance.maintain(indexed, index_min_rows=10)
    for table, column in (("scores", "name"), ("scores", "run_id"), ("label_issues", "run_id")):
        assert unindexed_rows(indexed, table, column) == 0, (table, column)
    assert len(indexed.dataset("scores").get_fragments()) == 1
    kept = [run_ids[1], third]
    assert_same(reads(indexed, kept), {key: frame for key, frame in before.items() if key[0] in kept})
    assert indexed.count("scores") == 2 * 3 * N


def test_refresh_skips_small_and_unknown_tables(workspace: Workspace) -> None:
    assert scalar_index.refresh(workspace, "scores") == []  # no table yet
    assert scalar_index.refresh(workspace, "samples", min_rows=0) == []  # no zone maps declared
