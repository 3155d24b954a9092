"""Ingest never damages what the workspace holds: ids stay unique, stored samples keep their
fields and decisions, an import's samples never lack their vectors, and files outside the source
are read only when asked."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend.cli import main
from backend.ingest.images import ImageProblem, inspect_image
from backend.jobs.ingest_job import ingest
from backend.storage import Workspace, decisions
from tests.conftest import write_png
from tests.ingest.corpus.base import png_header_only


def _features(path: Path, ids: list[str], labels: list[str], dim: int = 4) -> Path:
    vectors = np.random.default_rng(len(ids)).normal(size=(len(ids), dim)).astype(np.float32)
    pd.DataFrame({"id": ids, "label": labels, "embedding": list(vectors)}).to_parquet(path)
    return path


def test_a_crash_while_storing_vectors_leaves_no_sample_without_vectors(
        workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = _features(tmp_path / "f.parquet", ["a", "b", "c"], ["x", "y", "x"])

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed while writing vectors")

    monkeypatch.setattr(Workspace, "append_embeddings", killed)
    with pytest.raises(KeyboardInterrupt):
        ingest(workspace, source, embeddings=True)
    assert workspace.sample_ids() == set()  # samples are written after their vectors
    monkeypatch.undo()
    result = ingest(workspace, source, embeddings=True)  # the rerun completes
    assert workspace.sample_ids() == {"a", "b", "c"} == workspace.embedded_ids(result.embedding_key)


def test_reimporting_the_same_embeddings_changes_nothing_and_says_nothing(workspace: Workspace, tmp_path: Path) -> None:
    source = _features(tmp_path / "f.parquet", ["a", "b", "c", "d"], ["x", "y", "x", "y"])
    ingest(workspace, source, embeddings=True)
    again = ingest(workspace, source, embeddings=True)
    assert (again.n_new, again.n_updated, again.report.problems) == (0, 4, [])


def test_a_relabel_decision_survives_a_manifest_that_changes_the_label(workspace: Workspace, tmp_path: Path) -> None:
    for name, value in (("a", 1), ("b", 2), ("c", 3)):
        write_png(tmp_path / f"{name}.png", value)
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label,id\na.png,cat,s1\nb.png,dog,s2\nc.png,bird,s3\n")
    ingest(workspace, manifest)
    decisions.decide(workspace, "relabel", ["s1"], to="dog", source="cli")
    manifest.write_text("path,label,id\na.png,bird,s1\nb.png,dog,s2\n")
    result = ingest(workspace, manifest)
    (line,) = [p for p in result.report.problems if p.action == "updated"]
    assert line.row == 1 and "label 'cat' -> 'bird'" in line.problem and "its label after decisions stays 'dog'" in line.problem
    curated = decisions.curated_samples(workspace).set_index("id")
    assert curated.loc["s1", ["label", "original_label"]].tolist() == ["dog", "bird"]  # replayed over the new label
    decisions.undo(workspace)  # the log still replays: undoing the relabel shows the new label
    assert decisions.curated_samples(workspace).set_index("id").loc["s1", "label"] == "bird"


def test_the_file_wins_over_a_link_that_sorts_before_it(workspace: Workspace, tmp_path: Path) -> None:
    root = tmp_path / "images"
    write_png(root / "cat" / "z_real.png", 1)
    write_png(root / "dog" / "d.png", 2)
    os.symlink(root / "cat" / "z_real.png", root / "cat" / "a_link.png")
    os.symlink(root / "cat", root / "dog" / "more")  # a folder link inside the folder: each file once
    result = ingest(workspace, root)
    assert sorted(Path(p).name for p in workspace.samples(columns=["path"])["path"]) == ["d.png", "z_real.png"]
    assert sorted(Path(p.path).name for p in result.report.skipped) == ["a_link.png", "a_link.png", "z_real.png"]
    assert all("duplicate of" in p.problem and p.problem.endswith("z_real.png") for p in result.report.skipped)
    again = ingest(workspace, root)
    assert (again.n_new, again.n_updated) == (0, 2)


def test_the_cli_refuses_files_outside_unless_asked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_png(tmp_path / "data" / "in.png", 1)
    write_png(tmp_path / "data" / "in2.png", 3)
    write_png(tmp_path / "outside.png", 2)
    manifest = tmp_path / "data" / "m.csv"
    manifest.write_text("path,label\nin.png,a\n../outside.png,b\nin2.png,b\n")
    ws = tmp_path / "ws"
    assert main(["ingest", "--workspace", str(ws), str(manifest)]) == 0
    out = capsys.readouterr().out
    assert "ingested 2 samples" in out and "row 2 (../outside.png): path outside the manifest's folder" in out
    assert "--allow-outside-root" in out
    assert main(["ingest", "--workspace", str(ws), str(manifest), "--allow-outside-root"]) == 0
    assert "ingested 3 samples (1 new, 2 updated)" in capsys.readouterr().out


def test_a_huge_header_is_refused_before_decoding_without_a_warning(tmp_path: Path) -> None:
    for side in (50_000, 12_000):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # neither PIL's DecompressionBombError nor its warning escapes
            with pytest.raises(ImageProblem, match=f"image too large: {side * side:,} pixels"):
                inspect_image(png_header_only(tmp_path / f"{side}.png", side, side))


def test_an_embeddings_import_keeps_stored_paths_and_splits(workspace: Workspace, tmp_path: Path) -> None:
    root = tmp_path / "images"
    for split in ("train", "test"):
        for label in ("cat", "dog"):
            write_png(root / split / label / f"{label}.png", 10 if label == "cat" else 90)
    ingest(workspace, root)
    before = workspace.samples().sort_values("id").reset_index(drop=True)
    ids = before["id"].tolist()
    frame = pd.DataFrame({"id": ids, "label": before["label"], "path": ["elsewhere.png"] + [None] * 3,
                          "split": ["val", "", "", ""],
                          "embedding": list(np.ones((4, 3), np.float32))})
    frame.to_parquet(tmp_path / "f.parquet")
    result = ingest(workspace, tmp_path / "f.parquet", embeddings=True)
    (line,) = result.report.problems
    assert line.row == 1 and line.action == "kept stored"
    assert "its stored path" in line.problem and f"its stored split {before['split'][0]!r} is kept, not 'val'" in line.problem
    after = workspace.samples().sort_values("id").reset_index(drop=True)
    pd.testing.assert_frame_equal(after, before)  # every stored field as it was
    assert workspace.embedded_ids(result.embedding_key) == set(ids)


def test_a_label_with_a_bidirectional_override_is_refused(workspace: Workspace, tmp_path: Path) -> None:
    """U+202E makes 'cat\u202egod' display as another text; found by the manifest property test."""
    write_png(tmp_path / "a.png", 10)
    write_png(tmp_path / "b.png", 20)
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\na.png,cat\nb.png,cat\u202egod\n", encoding="utf-8")
    result = ingest(workspace, manifest)
    assert result.n_ingested == 1
    assert any("control character" in line and "row 2" in line for line in result.report.lines())
