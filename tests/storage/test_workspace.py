from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from backend.storage import (
    ConflictError,
    NotFoundError,
    StorageError,
    Workspace,
    export,
    queries,
    runs,
    subsets,
)
from backend.storage.schemas import SAMPLES, embedding_table_name
from backend.storage.workspace import utcnow


def sample_rows(n: int, *, label_of=lambda i: f"c{i % 3}", split="train") -> pa.Table:
    now = utcnow()
    return pa.Table.from_pylist(
        [dict(id=f"s{i}", path=f"/img/{i}.png", label=label_of(i), split=split, width=8, height=8,
              content_hash=f"h{i}", source="test", ingested_at=now) for i in range(n)],
        schema=SAMPLES.schema,
    )


def test_open_requires_a_workspace(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="not a Thresher workspace"):
        Workspace.open(tmp_path / "none")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "file.txt").write_text("x")
    with pytest.raises(StorageError, match="not empty"):
        Workspace.open(tmp_path / "full", create=True)
    ws = Workspace.open(tmp_path / "new", create=True)
    assert Workspace.exists(ws.root) and Workspace.open(ws.root).root == ws.root


def test_newer_format_is_refused(workspace: Workspace) -> None:
    (workspace.root / "workspace.json").write_text(json.dumps({"format_version": 99}))
    with pytest.raises(StorageError, match="newer Thresher"):
        Workspace.open(workspace.root)


def test_upsert_samples_counts_new_and_updated(workspace: Workspace) -> None:
    assert workspace.upsert_samples(sample_rows(5)) == (5, 0)
    assert workspace.upsert_samples(sample_rows(7, label_of=lambda i: "z")) == (2, 5)
    frame = workspace.samples()
    assert len(frame) == 7 and set(frame["label"]) == {"z"}


def test_embeddings_roundtrip_and_dimension_guard(workspace: Workspace) -> None:
    workspace.upsert_samples(sample_rows(4))
    vecs = np.eye(4, 3, dtype=np.float32)
    workspace.append_embeddings("m1", ["s0", "s1"], vecs[:2], np.array([2.0, 3.0]))
    workspace.append_embeddings("m1", ["s2", "s3"], vecs[2:], np.array([4.0, 5.0]))
    ids, loaded, norms = workspace.load_embeddings("m1")
    assert list(ids) == ["s0", "s1", "s2", "s3"]
    np.testing.assert_array_equal(loaded, vecs)
    np.testing.assert_array_equal(norms, [2, 3, 4, 5])
    assert workspace.embedded_ids("m1") == {"s0", "s1", "s2", "s3"}
    assert workspace.embedding_keys() == ["m1"]
    with pytest.raises(StorageError, match="holds 3-d vectors"):
        workspace.append_embeddings("m1", ["s0"], np.ones((1, 5), np.float32), np.ones(1))
    workspace.append_embeddings("m1", ["s0"], np.zeros((1, 3), np.float32), np.ones(1), upsert=True)
    ids, loaded, _ = workspace.load_embeddings("m1")
    assert len(ids) == 4 and not loaded[list(ids).index("s0")].any()
    with pytest.raises(NotFoundError, match="run `thresher embed`"):
        workspace.load_embeddings("other")
    with pytest.raises(ValueError, match="may only use"):
        embedding_table_name("bad/key")


def test_run_lifecycle_and_delete_removes_owned_rows(workspace: Workspace) -> None:
    run_id = runs.start_run(workspace, "project", {"method": "pca"}, embedding_key="m1", seed=3)
    workspace.write_projection(run_id, ["a", "b"], np.array([[0, 1], [2, 3]]))
    assert runs.get_run(workspace, run_id)["status"] == "running"
    runs.finish_run(workspace, run_id, {"n_points": 2})
    row = runs.get_run(workspace, run_id)
    assert row["status"] == "done" and row["summary"] == {"n_points": 2} and row["config"] == {"method": "pca"}
    assert row["seed"] == 3 and row["code_version"]
    failed = runs.start_run(workspace, "embed", {})
    runs.fail_run(workspace, failed, "boom")
    assert runs.get_run(workspace, failed)["error"] == "boom"
    assert runs.latest_run(workspace, "project")["run_id"] == run_id
    assert runs.latest_run(workspace, "embed") is None
    runs.delete_run(workspace, run_id)
    assert workspace.count("projections") == 0
    with pytest.raises(NotFoundError):
        runs.get_run(workspace, run_id)


def test_subsets_never_overwrite_silently(workspace: Workspace) -> None:
    workspace.upsert_samples(sample_rows(6))
    assert subsets.save_subset(workspace, "keep me", ["s1", "s2", "s2"]) == 2
    with pytest.raises(ConflictError, match="exists"):
        subsets.save_subset(workspace, "keep me", ["s3"])
    assert sorted(subsets.subset_ids(workspace, "keep me")) == ["s1", "s2"]
    subsets.save_subset(workspace, "keep me", ["s3", "s4"], overwrite=True)
    assert sorted(subsets.subset_ids(workspace, "keep me")) == ["s3", "s4"]
    with pytest.raises(StorageError, match="not samples of this workspace"):
        subsets.save_subset(workspace, "other", ["s1", "nope"])
    with pytest.raises(StorageError, match="not allowed"):
        subsets.save_subset(workspace, "../etc", ["s1"])
    with pytest.raises(StorageError, match="empty"):
        subsets.save_subset(workspace, "none", [])
    listing = subsets.list_subsets(workspace)
    assert listing[["name", "n"]].values.tolist() == [["keep me", 2]]
    assert subsets.delete_subset(workspace, "keep me") == 2
    with pytest.raises(NotFoundError, match="no subset named"):
        subsets.subset_ids(workspace, "keep me")
    actions = workspace.read("activity")["action"].tolist()
    assert actions == ["save_subset", "replace_subset", "delete_subset"]


def test_queries_over_lance_tables(workspace: Workspace) -> None:
    workspace.upsert_samples(sample_rows(9))
    q = queries.QueryEngine(workspace)
    assert queries.class_counts(q).values.tolist() == [["c0", 3], ["c1", 3], ["c2", 3]]
    assert queries.split_counts(q).values.tolist() == [["train", 9]]
    run_id = runs.start_run(workspace, "project", {})
    workspace.write_projection(run_id, [f"s{i}" for i in range(9)], np.arange(18).reshape(9, 2))
    points = queries.projection_points(q, run_id)
    assert len(points) == 9 and list(points.columns) == list(queries.POINT_COLUMNS)
    # a write after the engine was created is visible to the next query
    workspace.upsert_samples(sample_rows(10))
    assert q.sql("SELECT count(*) AS n FROM samples")["n"][0] == 10
    # user input only as bound parameters
    assert q.sql("SELECT count(*) AS n FROM samples WHERE label = ?", ["c0' OR 1=1 --"])["n"][0] == 0


@pytest.mark.parametrize("fmt", export.FORMATS)
def test_export_roundtrip(workspace: Workspace, tmp_path: Path, fmt: str) -> None:
    workspace.upsert_samples(sample_rows(5))
    out = tmp_path / f"m.{fmt}"
    assert export.export_manifest(workspace, fmt, out).rows == 5
    read = {"csv": pd.read_csv, "parquet": pd.read_parquet, "jsonl": lambda p: pd.read_json(p, lines=True)}[fmt]
    frame = read(out)
    assert len(frame) == 5 and {"id", "path", "label", "split"} <= set(frame.columns)
    subsets.save_subset(workspace, "two", ["s0", "s4"])
    assert export.export_manifest(workspace, fmt, out, subset="two", overwrite=True).rows == 2
    assert sorted(read(out)["id"]) == ["s0", "s4"]


def test_export_errors_leave_nothing_behind(workspace: Workspace, tmp_path: Path) -> None:
    workspace.upsert_samples(sample_rows(2))
    with pytest.raises(StorageError, match="does not exist"):
        export.export_manifest(workspace, "csv", tmp_path / "missing" / "m.csv")
    with pytest.raises(StorageError, match="is a folder"):
        export.export_manifest(workspace, "csv", tmp_path)
    with pytest.raises(StorageError, match="unknown export format"):
        export.export_manifest(workspace, "xlsx", tmp_path / "m.xlsx")
    with pytest.raises(NotFoundError):
        export.export_manifest(workspace, "csv", tmp_path / "m.csv", subset="nope")
    assert not list(tmp_path.glob("*.csv")) and not list(tmp_path.glob(".*partial"))


def test_a_table_left_without_a_committed_version_is_no_table(workspace: Workspace) -> None:
    """A process killed while it created a table leaves its folder with data files and no manifest
    (the crash trials hit it: every reader of the workspace then failed). Readers skip it and the
    next write creates the table over it."""
    ids = np.array(["a", "b"], dtype=object)
    vectors = np.eye(2, 4, dtype=np.float32)
    workspace.append_embeddings("m1", ids, vectors, np.ones(2, np.float32))
    half = workspace.lance_dir / f"{embedding_table_name('m2')}.lance"
    (half / "data").mkdir(parents=True)
    (half / "data" / "0.lance").write_bytes(b"partial")
    (half / "_versions").mkdir()
    assert workspace.embedding_keys() == ["m1"] and not workspace.has_table(embedding_table_name("m2"))
    for name in workspace.table_names():
        workspace.read(name)  # every listed table reads
    workspace.append_embeddings("m2", ids, vectors, np.ones(2, np.float32))
    assert workspace.embedding_keys() == ["m1", "m2"]
    assert sorted(workspace.load_embeddings("m2")[0]) == ["a", "b"]
