"""The curated export: labels after decisions, dropped samples out (or in on request), the
provenance record beside every file and in Parquet's metadata, the round trip through ingest,
the image-folder layout, and score columns without doubled suffixes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from backend.cli import main
from backend.jobs.prune_job import prune
from backend.storage import Workspace, decisions, provenance, results, runs, subsets
from backend.storage.errors import StorageError
from backend.storage.export import export_manifest, folder_layout, manifest_frame, write_imagefolder
from backend.storage.score_export import export_scores, score_columns
from backend.version import code_version
from tests.app.app_testkit import EMBEDDING_KEY, N_SAMPLES
from tests.conftest import write_png


@pytest.fixture
def ws(scored_ws: Workspace) -> Workspace:
    return scored_ws


def _decide(ws: Workspace) -> dict[str, list[str]]:
    """A relabel, a keep, two drops (one undone), a tag and an unsure; returns who got what."""
    samples = ws.samples(columns=["id", "label"]).sort_values("id")
    circles = samples.loc[samples["label"] == "circle", "id"].tolist()
    squares = samples.loc[samples["label"] == "square", "id"].tolist()
    decisions.decide(ws, "relabel", circles[:2], to="stripe")
    decisions.decide(ws, "keep", circles[2:3])
    decisions.decide(ws, "drop", squares[:3])
    decisions.undo(ws)  # the latest entry: the drop of squares[2]
    decisions.decide(ws, "tag", squares[3:5], tag="blurry")
    decisions.decide(ws, "unsure", squares[5:6])
    dropped = sorted(decisions.dropped_ids(ws))
    return {"relabeled": circles[:2], "kept": circles[2:3], "dropped": dropped, "tagged": squares[3:5],
            "unsure": squares[5:6]}


def test_the_manifest_carries_the_decisions_and_leaves_dropped_samples_out(ws: Workspace, tmp_path: Path) -> None:
    who = _decide(ws)
    assert len(who["dropped"]) == 2
    written = export_manifest(ws, "csv", tmp_path / "all.csv")
    frame = pd.read_csv(written.path, dtype=str, keep_default_na=False).set_index("id")
    assert list(frame.columns[:6]) == ["path", "label", "original_label", "split", "decision", "tags"]
    assert len(frame) == N_SAMPLES - 2 and not set(who["dropped"]) & set(frame.index)
    assert (frame.loc[who["relabeled"], "label"] == "stripe").all()
    assert (frame.loc[who["relabeled"], "original_label"] == "circle").all()
    assert (frame.loc[who["relabeled"], "decision"] == "relabeled").all()
    assert frame.loc[who["kept"][0], "decision"] == "kept" and frame.loc[who["unsure"][0], "decision"] == "unsure"
    assert (frame.loc[who["tagged"], "tags"] == "blurry").all()
    untouched = frame.drop(index=[i for ids in who.values() for i in ids], errors="ignore")
    assert (untouched["label"] == untouched["original_label"]).all() and (untouched["decision"] == "").all()

    with_dropped = manifest_frame(ws, include_dropped=True).set_index("id")
    assert len(with_dropped) == N_SAMPLES
    assert (with_dropped.loc[who["dropped"], "decision"] == "dropped").all()


def test_every_export_has_its_provenance(ws: Workspace, tmp_path: Path) -> None:
    who = _decide(ws)
    result = prune(ws, name="half", ratio=0.5, method="keep_hard:el2n", seed=3)
    written = export_manifest(ws, "parquet", tmp_path / "half.parquet", subset="half")
    assert written.provenance_path == tmp_path / "half.parquet.provenance.json"
    record = json.loads(written.provenance_path.read_text())
    assert record["workspace"] == str(ws.root) and record["file"] == str(tmp_path / "half.parquet")
    assert record["rows"] == len(pd.read_parquet(written.path)) == result.n_kept
    assert record["subset"]["name"] == "half" and record["subset"]["origin"] == "prune"
    run = record["run"]
    assert (run["run_id"], run["kind"], run["method"], run["ratio"], run["seed"]) == (
        result.run_id, "prune", "keep_hard:el2n", 0.5, 3)
    assert run["score_run"] == runs.latest_run(ws, "score")["run_id"] and run["embedding_model"] == EMBEDDING_KEY
    assert run["n_pinned"] == 1 and run["n_dropped_by_decision"] == 2
    half = set(subsets.subset_ids(ws, "half"))
    scope = decisions.curated_samples(ws).set_index("id").loc[sorted(half)]
    counts = record["decisions"]
    assert counts["applied"] == int(scope["n_decisions"].sum()) > 0
    assert counts["log_seq"] == int(decisions.read_log(ws)["seq"].max())
    assert counts["dropped"] == counts["dropped_left_out"] == 0  # the prune left the dropped samples out
    assert record["code_version"] == code_version() and record["exported_at"]
    # Parquet carries the same record in its schema metadata
    metadata = pq.read_schema(written.path).metadata
    assert json.loads(metadata[provenance.PARQUET_KEY]) == record
    assert set(who["kept"]) <= half


def test_a_hand_selection_with_dropped_samples_exports_without_them(ws: Workspace, tmp_path: Path) -> None:
    ids = sorted(ws.sample_ids())
    decisions.decide(ws, "drop", ids[:2])
    subsets.save_subset(ws, "picked", ids[:6])  # saving is unaffected by decisions
    without = export_manifest(ws, "jsonl", tmp_path / "picked.jsonl", subset="picked")
    assert sorted(pd.read_json(without.path, lines=True)["id"]) == ids[2:6]
    counts = without.record["decisions"]
    assert (counts["dropped"], counts["dropped_left_out"], without.record["run"]) == (2, 2, None)
    with_dropped = export_manifest(ws, "jsonl", tmp_path / "all.jsonl", subset="picked", include_dropped=True)
    assert sorted(pd.read_json(with_dropped.path, lines=True)["id"]) == ids[:6]
    assert with_dropped.record["decisions"]["dropped_left_out"] == 0


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_an_exported_manifest_reingests_to_the_same_ids_and_current_labels(ws: Workspace, tmp_path: Path,
                                                                           fmt: str) -> None:
    _decide(ws)
    out = tmp_path / f"curated.{fmt}"
    assert main(["export", "--workspace", str(ws.root), "--format", fmt, "--out", str(out)]) == 0
    second = tmp_path / "w2"
    # the manifest names images outside its own folder: ingest refuses that unless told (issue 15)
    assert main(["ingest", "--workspace", str(second), str(out)]) == 2
    assert main(["ingest", "--workspace", str(second), "--allow-outside-root", str(out)]) == 0
    expected = manifest_frame(ws).set_index("id")
    again = Workspace.open(second).samples(columns=["id", "label", "split", "path"]).set_index("id").loc[expected.index]
    assert again["label"].tolist() == expected["label"].tolist()
    assert again["split"].tolist() == expected["split"].tolist()
    assert again["path"].tolist() == expected["path"].tolist()


def test_the_cli_prints_absolute_paths_and_refuses_what_does_not_go_together(
    ws: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["export", "--workspace", str(ws.root), "--out", "relative.csv"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {N_SAMPLES} rows to {tmp_path / 'relative.csv'}" in out
    assert f"provenance: {tmp_path / 'relative.csv.provenance.json'}" in out
    assert main(["export", "--workspace", str(ws.root), "--out", "x.csv", "--copy"]) == 2
    assert "--copy goes with --format imagefolder" in capsys.readouterr().err
    assert main(["export", "--workspace", str(ws.root), "--what", "scores", "--format", "imagefolder",
                 "--out", "x"]) == 2
    assert "go with --what manifest" in capsys.readouterr().err


def test_an_image_folder_of_links_by_current_label_and_split(ws: Workspace, tmp_path: Path) -> None:
    who = _decide(ws)
    out = tmp_path / "folder"
    written = export_manifest(ws, "imagefolder", out)
    files = sorted(p for p in out.rglob("*.png"))
    assert len(files) == N_SAMPLES - 2 and all(p.is_symlink() for p in files)
    assert {p.relative_to(out).parts[0] for p in files} == {"train", "test"}
    frame = manifest_frame(ws).set_index("id")
    for sample_id in who["relabeled"]:
        source = Path(frame.loc[sample_id, "path"])
        target = out / frame.loc[sample_id, "split"] / "stripe" / source.name
        assert target.is_symlink() and target.resolve() == source.resolve()
    record = json.loads((out / "provenance.json").read_text())
    assert written.provenance_path == out / "provenance.json"
    assert record["layout"] == "split/label/file" and record["files"] == "symbolic links"
    assert record["rows"] == N_SAMPLES - 2 and record["decisions"]["relabeled"] == 2
    with pytest.raises(StorageError, match="not an empty folder"):
        export_manifest(ws, "imagefolder", out)


def test_dropped_files_are_not_in_the_image_folder(ws: Workspace, tmp_path: Path) -> None:
    who = _decide(ws)
    paths = ws.samples(columns=["id", "path"]).set_index("id")["path"]
    out = tmp_path / "folder"
    export_manifest(ws, "imagefolder", out)
    linked = {p.resolve() for p in out.rglob("*.png")}
    assert not {Path(paths[i]).resolve() for i in who["dropped"]} & linked
    assert len(linked) == N_SAMPLES - 2


def test_an_image_folder_of_copies(ws: Workspace, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()  # an empty folder may be the target
    written = export_manifest(ws, "imagefolder", tmp_path / "empty", copy=True)
    files = sorted(p for p in written.path.rglob("*.png"))
    assert len(files) == N_SAMPLES and not any(p.is_symlink() for p in files)
    paths = ws.samples(columns=["path", "label", "split"])
    first = paths.iloc[0]
    copied = written.path / first["split"] / first["label"] / Path(first["path"]).name
    assert copied.read_bytes() == Path(first["path"]).read_bytes()
    assert written.record["files"] == "copies"


def test_clashing_file_names_get_their_id(tmp_path: Path) -> None:
    a, b, c = (write_png(tmp_path / sub / "img.png", v) for sub, v in (("x", 10), ("y", 20), ("z", 30)))
    frame = pd.DataFrame({"id": ["s/1", "s2", "s3"], "path": [str(a), str(b), str(c)], "label": ["cat", "cat", "dog"],
                          "split": [None, None, None]})
    layout = folder_layout(frame)
    assert layout["target"].tolist() == ["cat/s_1_img.png", "cat/s2_img.png", "dog/img.png"]
    written = write_imagefolder(frame, tmp_path / "out", {"what": "manifest"})
    assert (tmp_path / "out" / "cat" / "s_1_img.png").resolve() == a.resolve()
    assert written.record["layout"] == "label/file" and written.record["renamed_with_id"] == 2


def test_an_image_folder_refuses_what_it_cannot_lay_out(tmp_path: Path) -> None:
    image = write_png(tmp_path / "a.png", 10)
    base = {"id": ["a", "b"], "path": [str(image), str(image)], "label": ["cat", "dog"], "split": ["train", "test"]}
    with pytest.raises(StorageError, match="1 of the 2 samples have no image file .*features only, e.g. b"):
        folder_layout(pd.DataFrame({**base, "path": [str(image), None]}))
    with pytest.raises(StorageError, match="image files are gone"):
        folder_layout(pd.DataFrame({**base, "path": [str(image), str(tmp_path / "gone.png")]}))
    with pytest.raises(StorageError, match="have no split .* while the others do"):
        folder_layout(pd.DataFrame({**base, "split": ["train", ""]}))
    with pytest.raises(StorageError, match="label 'a/b' of sample b cannot be a folder name"):
        folder_layout(pd.DataFrame({**base, "label": ["cat", "a/b"]}))
    assert not (tmp_path / "out").exists()


def test_feature_only_samples_cannot_become_an_image_folder(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(0)
    pd.DataFrame({"id": [f"f{i}" for i in range(6)], "label": [i % 2 for i in range(6)],
                  "embedding": list(rng.normal(size=(6, 4)).astype(np.float32))}).to_parquet(tmp_path / "f.parquet")
    ws = tmp_path / "ws"
    assert main(["ingest", "--workspace", str(ws), "--embeddings", str(tmp_path / "f.parquet")]) == 0
    capsys.readouterr()
    assert main(["export", "--workspace", str(ws), "--format", "imagefolder", "--out", str(tmp_path / "out")]) == 2
    assert "6 of the 6 samples have no image file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.partial*"))


def test_score_columns_carry_no_doubled_suffix(ws: Workspace, tmp_path: Path) -> None:
    run_id = runs.latest_run(ws, "score")["run_id"]
    ids = sorted(ws.sample_ids())
    detectors = {f"{d}_score": np.linspace(0, 1, len(ids)) for d in ("confident_learning", "knn_vote", "aum")}
    results.write_scores(ws, run_id, ids, detectors)  # as the label-noise stage names them
    written = export_scores(ws, run_id, "csv", tmp_path / "scores.csv")
    columns = pd.read_csv(written.path).columns
    assert not [c for c in columns if c.endswith("_score_score")]
    assert {"aum_score", "el2n_score", "aum_issue_score", "knn_vote_issue_score", "confident_learning_issue_score",
            "suggested_probability", "nc_distance_ratio", "label_issue_score"} <= set(columns)
    assert written.record["score_run"]["run_id"] == run_id and written.record["what"] == "scores"
    assert written.provenance_path.exists()
    assert score_columns(["aum", "aum_score"], None) == {"aum": "aum_score", "aum_score": "aum_issue_score"}
