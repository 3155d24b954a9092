"""Renaming and comparing saved subsets, through storage and the CLI, on nine samples of three
classes (c0: s0 s3 s6, c1: s1 s4 s7, c2: s2 s5 s8)."""

from __future__ import annotations

import json

import pytest

from backend.cli import main
from backend.storage import ConflictError, NotFoundError, StorageError, Workspace, subsets
from tests.storage.test_workspace import sample_rows


@pytest.fixture
def saved(workspace: Workspace) -> Workspace:
    workspace.upsert_samples(sample_rows(9))
    subsets.save_subset(workspace, "first", ["s0", "s1", "s2", "s3"], origin="prune", run_id="prune-1")
    subsets.save_subset(workspace, "second", ["s2", "s3", "s4", "s5", "s6"])
    return workspace


def test_rename_is_one_commit_and_keeps_ids_origin_and_run(saved: Workspace) -> None:
    before = subsets.subset_record(saved, "first")
    version = saved.table_version("subsets")
    assert subsets.rename_subset(saved, "first", "renamed") == 4
    assert saved.table_version("subsets") == version + 1  # one commit: never both names, never half
    after = subsets.subset_record(saved, "renamed")
    assert sorted(after.ids) == sorted(before.ids)
    assert (after.origin, after.run_id, after.saved_at) == ("prune", "prune-1", before.saved_at)
    assert subsets.subset_names(saved) == ["renamed", "second"]
    last = saved.read("activity").iloc[-1]
    assert (last["action"], last["target"], last["n_ids"]) == ("rename_subset", "renamed", 4)
    assert json.loads(last["detail_json"]) == {"from": "first"}


def test_rename_refuses_before_writing(saved: Workspace) -> None:
    version = saved.table_version("subsets")
    with pytest.raises(ConflictError, match="a subset named 'second' exists"):
        subsets.rename_subset(saved, "first", "second")
    with pytest.raises(NotFoundError, match=r"no subset named 'nope'.*saved subsets: first, second"):
        subsets.rename_subset(saved, "nope", "other")
    with pytest.raises(StorageError, match="not allowed"):
        subsets.rename_subset(saved, "first", "../etc")
    with pytest.raises(StorageError, match="already has that name"):
        subsets.rename_subset(saved, "first", " first ")
    assert saved.table_version("subsets") == version
    assert sorted(subsets.subset_ids(saved, "first")) == ["s0", "s1", "s2", "s3"]


def test_compare_counts_both_only_one_jaccard_and_per_class(saved: Workspace) -> None:
    cmp = subsets.compare_subsets(saved, "first", "second")
    # first {s0 s1 s2 s3}, second {s2 s3 s4 s5 s6}: both {s2 s3}, union of 7
    assert cmp.counts == {"n_a": 4, "n_b": 5, "n_by_both": 2, "only_a": 2, "only_b": 3,
                          "jaccard": pytest.approx(2 / 7)}  # fmt: skip
    by_class = cmp.by_class.set_index("class")
    assert by_class.loc["c0"].tolist() == [2, 2, 1]  # a: s0 s3; b: s3 s6
    assert by_class.loc["c1"].tolist() == [1, 1, 0]  # a: s1; b: s4
    assert by_class.loc["c2"].tolist() == [1, 2, 1]  # a: s2; b: s2 s5
    same = subsets.compare_subsets(saved, "second", "first")
    assert same.counts["jaccard"] == cmp.counts["jaccard"] and same.counts["only_a"] == 3
    with pytest.raises(StorageError, match="two different subsets"):
        subsets.compare_subsets(saved, "first", "first")
    with pytest.raises(NotFoundError, match="no subset named 'gone'"):
        subsets.compare_subsets(saved, "first", "gone")


def test_cli_renames_and_compares(saved: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    root = str(saved.root)
    assert main(["subsets", "--workspace", root, "--rename", "first", "hard half"]) == 0
    assert "renamed subset 'first' to 'hard half' (4 ids)" in capsys.readouterr().out
    assert main(["subsets", "--workspace", root, "--rename", "hard half", "second"]) == 2
    assert "a subset named 'second' exists" in capsys.readouterr().err
    assert main(["subsets", "--workspace", root, "--compare", "hard half", "second"]) == 0
    out = capsys.readouterr().out
    assert "samples: a 4, b 5, both 2, only a 2, only b 3; Jaccard 0.286" in out and "c2" in out
    assert main(["subsets", "--workspace", root, "--compare", "hard half", "first"]) == 2
    assert "no subset named 'first'" in capsys.readouterr().err
