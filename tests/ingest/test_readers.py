from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backend.ingest.embeddings_file import read_embeddings_file
from backend.ingest.folder import SourceError, read_image_folder
from backend.ingest.images import ImageProblem, inspect_image, sample_id_for_path
from backend.ingest.manifest import read_manifest
from backend.ingest.report import IngestReport
from tests.conftest import write_png


def test_folder_with_split_level(image_folder: Path) -> None:
    report = IngestReport()
    cands = read_image_folder(image_folder, report)
    assert len(cands) == 13  # 12 good + broken.png (decoded later)
    assert {c.split for c in cands} == {"train", "test"}
    assert {c.label for c in cands} == {"cat", "dog"}
    assert [p.problem for p in report.problems] == ["not an image file: extension '.txt'"]


def test_folder_without_split_level(tmp_path: Path) -> None:
    write_png(tmp_path / "a" / "1.png", 1)
    write_png(tmp_path / "b" / "2.png", 2)
    (tmp_path / "loose.png").write_bytes(b"x")
    report = IngestReport()
    cands = read_image_folder(tmp_path, report)
    assert sorted((c.label, c.split) for c in cands) == [("a", ""), ("b", "")]
    assert "outside a class folder" in report.problems[0].problem


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not a folder"):
        read_image_folder(tmp_path / "nope", IngestReport())
    with pytest.raises(SourceError, match="no sub-folders"):
        read_image_folder(tmp_path, IngestReport())


def test_ids_are_stable_and_path_based(tmp_path: Path) -> None:
    p = write_png(tmp_path / "x.png", 3)
    assert sample_id_for_path(p) == sample_id_for_path(str(p))
    assert len(sample_id_for_path(p)) == 16
    assert sample_id_for_path(p) != sample_id_for_path(tmp_path / "y.png")


def test_inspect_image_reasons(tmp_path: Path) -> None:
    good = write_png(tmp_path / "g.png", 7, size=(6, 5))
    info = inspect_image(good)
    assert (info.width, info.height) == (6, 5) and len(info.content_hash) == 32
    with pytest.raises(ImageProblem, match="missing file"):
        inspect_image(tmp_path / "missing.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageProblem, match="empty"):
        inspect_image(tmp_path / "empty.png")
    truncated = tmp_path / "trunc.png"
    truncated.write_bytes(good.read_bytes()[:40])
    with pytest.raises(ImageProblem, match="corrupt image"):
        inspect_image(truncated)


def test_manifest_relative_paths_unknown_columns_and_bad_rows(tmp_path: Path) -> None:
    write_png(tmp_path / "imgs" / "a.png", 1)
    write_png(tmp_path / "imgs" / "b.png", 2)
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "path,label,split,id,extra\n"
        "imgs/a.png,cat,Validation,,x\n"
        "imgs/b.png,dog,train,b-id,y\n"
        ",dog,train,,z\n"
        "imgs/b.png,,train,,z\n"
        "imgs/a.png,cat,train,b-id,z\n"
    )
    report = IngestReport()
    cands = read_manifest(manifest, report)
    assert [c.label for c in cands] == ["cat", "dog"]
    assert cands[0].split == "val" and cands[0].path == str((tmp_path / "imgs" / "a.png").resolve())
    assert cands[1].id == "b-id"
    lines = report.lines()
    assert any("unknown column 'extra'" in line and "ignored column" in line for line in lines)
    assert any("row 3" in line and "empty path" in line for line in lines)
    assert any("row 4" in line and "empty label" in line for line in lines)
    assert any("row 5" in line and "duplicate id 'b-id' (first on row 2)" in line for line in lines)


def test_manifest_missing_required_column(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("file,label\na.png,x\n")
    with pytest.raises(SourceError, match="lacks the required column"):
        read_manifest(manifest, IngestReport())


def test_parquet_manifest(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png", 1)
    pd.DataFrame({"path": [str(tmp_path / "a.png")], "label": [3]}).to_parquet(tmp_path / "m.parquet")
    cands = read_manifest(tmp_path / "m.parquet", IngestReport())
    assert cands[0].label == "3"


def test_embeddings_parquet_and_npz(tmp_path: Path) -> None:
    vecs = np.arange(12, dtype=np.float32).reshape(4, 3)
    frame = pd.DataFrame({"id": ["a", "b", "c", "d"], "label": [0, 1, 1, 0], "embedding": list(vecs)})
    frame.loc[2, "embedding"] = np.array([1.0, np.nan, 2.0])
    frame.loc[3, "embedding"] = np.array([1.0, 2.0])
    frame.to_parquet(tmp_path / "e.parquet")
    report = IngestReport()
    got = read_embeddings_file(tmp_path / "e.parquet", report)
    assert [c.id for c in got.candidates] == ["a", "b"]
    np.testing.assert_array_equal(got.vectors, vecs[:2])
    assert any("row 3" in line and "NaN" in line for line in report.lines())
    assert any("row 4" in line and "length 2 differs from 3" in line for line in report.lines())

    np.savez(tmp_path / "e.npz", id=np.array(["x", "y"]), label=np.array([1, 2]), embedding=vecs[:2])
    got = read_embeddings_file(tmp_path / "e.npz", IngestReport())
    assert [c.label for c in got.candidates] == ["1", "2"] and got.vectors.shape == (2, 3)


def test_embeddings_file_missing_column(tmp_path: Path) -> None:
    pd.DataFrame({"id": ["a"], "embedding": [[1.0]]}).to_parquet(tmp_path / "e.parquet")
    with pytest.raises(SourceError, match="label"):
        read_embeddings_file(tmp_path / "e.parquet", IngestReport())


def _read_rows(tmp_path: Path, table: pa.Table) -> tuple[list[str], np.ndarray, list[str]]:
    pq.write_table(table, tmp_path / "e.parquet", row_group_size=2)  # several chunks
    report = IngestReport()
    got = read_embeddings_file(tmp_path / "e.parquet", report)
    return [c.id for c in got.candidates], got.vectors, report.lines()


def test_embeddings_parquet_bad_rows_are_reported_one_by_one(tmp_path: Path) -> None:
    emb = pa.array([[1.0, 2.0], None, [3.0, None], [4.0, 5.0], [6.0, 7.0]], pa.list_(pa.float64()))
    table = pa.table({"id": ["a", "b", "c", "d", "a"], "label": ["x"] * 5, "embedding": emb})
    ids, vectors, lines = _read_rows(tmp_path, table)
    assert ids == ["a", "d"]
    np.testing.assert_array_equal(vectors, np.array([[1, 2], [4, 5]], np.float32))
    assert vectors.dtype == np.float32
    assert any("row 2" in line and "not a list of numbers" in line for line in lines)
    assert any("row 3" in line and "NaN" in line for line in lines)
    assert any("row 5" in line and "duplicate id 'a' (first on row 1)" in line for line in lines)


def test_embeddings_parquet_fixed_size_and_integer_lists(tmp_path: Path) -> None:
    flat = pa.array(np.arange(6, dtype=np.int32))
    emb = pa.FixedSizeListArray.from_arrays(flat, 3)
    ids, vectors, lines = _read_rows(tmp_path, pa.table({"id": ["a", "b"], "label": [1, 2], "embedding": emb}))
    assert ids == ["a", "b"] and not lines
    np.testing.assert_array_equal(vectors, np.arange(6, dtype=np.float32).reshape(2, 3))


def test_embeddings_parquet_text_column_is_a_row_error(tmp_path: Path) -> None:
    table = pa.table({"id": ["a", "b"], "label": ["x", "y"], "embedding": ["1.5", "oops"]})
    ids, vectors, lines = _read_rows(tmp_path, table)
    assert ids == ["a"] and vectors.shape == (1, 1)
    assert any("row 2" in line and "not a list of numbers" in line for line in lines)


def test_embeddings_file_keeps_every_row_without_a_copy_of_the_rows(tmp_path: Path) -> None:
    vecs = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    np.savez(tmp_path / "e.npz", id=np.arange(50).astype(str), label=np.zeros(50, int), embedding=vecs)
    got = read_embeddings_file(tmp_path / "e.npz", IngestReport())
    np.testing.assert_array_equal(got.vectors, vecs)
    assert got.vectors.base is not None  # a view of the one flat buffer, not a stack of rows


def test_embeddings_npz_needs_a_numeric_matrix(tmp_path: Path) -> None:
    np.savez(tmp_path / "e.npz", id=np.array(["a"]), label=np.array([1]), embedding=np.zeros((1, 2, 2)))
    with pytest.raises(SourceError, match="2-D numeric array"):
        read_embeddings_file(tmp_path / "e.npz", IngestReport())


def test_embeddings_npz_edge_shapes(tmp_path: Path) -> None:
    np.savez(tmp_path / "e.npz", id=np.array([], str), label=np.array([], int), embedding=np.zeros((0, 4), np.float32))
    got = read_embeddings_file(tmp_path / "e.npz", IngestReport())
    assert got.candidates == [] and got.vectors.shape[0] == 0  # the ingest job says "no sample"
    np.savez(tmp_path / "e.npz", id=np.array(["a", "b"]), label=np.array([1, 2]), embedding=np.zeros((3, 2)))
    with pytest.raises(SourceError, match="different lengths .*id 2.*embedding 3"):
        read_embeddings_file(tmp_path / "e.npz", IngestReport())
    np.savez(tmp_path / "e.npz", id=np.array(["a"]), label=np.array([1]), embedding=np.ones((1, 2), complex))
    with pytest.raises(SourceError, match="2-D numeric array") as info:
        read_embeddings_file(tmp_path / "e.npz", IngestReport())
    assert str(info.value).count(str(tmp_path / "e.npz")) == 1  # said once, not wrapped twice


def test_an_empty_first_vector_does_not_fix_the_length(tmp_path: Path) -> None:
    emb = pa.array([[], [1.0, 2.0], [3.0, 4.0]], pa.list_(pa.float32()))
    ids, vectors, lines = _read_rows(tmp_path, pa.table({"id": ["a", "b", "c"], "label": ["x"] * 3, "embedding": emb}))
    assert ids == ["b", "c"] and vectors.shape == (2, 2)
    assert any("row 1" in line and "empty list" in line for line in lines)
