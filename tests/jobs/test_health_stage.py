"""The dataset-health stage on a small workspace with planted problems, alone and in the score job."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from backend.cli import main
from backend.jobs.dataset import load_dataset
from backend.jobs.health_stage import health_scores
from backend.storage import Workspace, results, runs

N = 120


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 digits as colour PNGs with pixel embeddings; 3/4 train. Planted: d0120 an exact copy
    of train d0001 in test (same file bytes, same vector), d0121 a perturbed copy of train d0002
    in test, d0122 uniform noise (vector and image), d0123 darkened, d0124 without an image."""
    tmp = tmp_path_factory.mktemp("health")
    digits = load_digits()
    rng = np.random.default_rng(0)
    x, y = list(digits.data[:N] / 16.0), [str(t) for t in digits.target[:N]]
    images = [np.kron(g / 16.0, np.ones((4, 4)))[:, :, None] * rng.uniform(0.5, 1, 3) for g in digits.images[:N]]
    split = ["train" if i % 4 else "test" for i in range(N)]
    split[1] = split[2] = "train"
    x += [x[1], np.clip(x[2] + rng.normal(0, 0.02, 64), 0, 1), rng.random(64), digits.data[130] / 16.0,
          digits.data[131] / 16.0]
    y += [y[1], y[2], "3", str(digits.target[130]), str(digits.target[131])]
    images += [images[1], np.clip(images[2] + 0.1, 0, 1), rng.random((32, 32, 3)),
               np.kron(digits.images[130] / 16.0, np.ones((4, 4)))[:, :, None] * np.array([0.2, 0.2, 0.25]), None]
    split += ["test", "test", "train", "train", "train"]
    paths = []
    for i, img in enumerate(images):
        if img is None:
            paths.append(None)
            continue
        path = tmp / "images" / f"d{i:04d}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray((img * 255).round().astype(np.uint8), "RGB").save(path)
        paths.append(str(path))
    ids = [f"d{i:04d}" for i in range(len(x))]
    pd.DataFrame({"id": ids, "label": y, "embedding": [v.astype(np.float32) for v in x], "split": split,
                  "path": paths}).to_parquet(tmp / "digits.parquet")
    ws = tmp / "ws"
    assert main(["ingest", "--workspace", str(ws), "--embeddings", str(tmp / "digits.parquet")]) == 0
    return ws


def test_stage_flags_the_planted_samples(planted: Path) -> None:
    ws = Workspace.open(planted)
    data = load_dataset(ws, ws.embedding_keys()[0])
    columns, summary = health_scores(ws, data)
    frame = pd.DataFrame(columns, index=data.ids)

    def flagged(name: str) -> set[str]:
        return set(frame.index[frame[name] == 1])

    assert flagged("is_exact_duplicate") == {"d0001", "d0120"}
    assert frame.loc["d0001", "duplicate_group"] == frame.loc["d0120", "duplicate_group"] == 0
    assert {"d0002", "d0121"} <= flagged("is_near_duplicate")
    assert flagged("is_split_leak") == {"d0120", "d0121"}
    assert summary["leak_sources"] == {"d0120": "d0001", "d0121": "d0002"}
    assert "d0122" in flagged("is_outlier") and "d0122" in flagged("is_knn_outlier")
    assert flagged("is_dark") == {"d0123"}
    assert frame.loc["d0124", ["is_dark", "blurry_score", "is_grayscale"]].isna().all()  # no image
    assert frame.drop(index="d0124")[["is_dark", "is_grayscale", "blurry_score"]].notna().all().all()
    assert summary["n_images_read"] == len(data.ids) - 1 and summary["unreadable_images"] == []
    assert summary["counts"]["is_split_leak"] == 2


@pytest.fixture(scope="module")
def scored(planted: Path) -> Path:
    assert main(["score", "--workspace", str(planted)]) == 0
    return planted


def test_score_job_stores_the_health_columns(scored: Path) -> None:
    ws = Workspace.open(scored)
    run = runs.latest_run(ws, "score")
    wide = results.read_scores(ws, run["run_id"]).set_index("id")
    assert wide.loc["d0120", "is_split_leak"] == 1 and wide.loc["d0123", "is_dark"] == 1
    assert {"outlier_score", "knn_outlier_score", "near_duplicate_group", "is_low_information"} <= set(wide.columns)
    assert run["summary"]["health"]["leak_sources"] == {"d0120": "d0001", "d0121": "d0002"}


def test_the_scores_export_names_the_train_sample_each_leak_copies(scored: Path, tmp_path: Path) -> None:
    from backend.storage.score_export import scores_frame, scores_shape

    ws = Workspace.open(scored)
    run_id = runs.latest_run(ws, "score")["run_id"]
    frame = scores_frame(ws, run_id).set_index("id")
    columns = list(frame.columns)
    assert columns[columns.index("is_split_leak") + 1] == "split_leak_source"
    assert frame.loc["d0120", "split_leak_source"] == "d0001" and frame.loc["d0121", "split_leak_source"] == "d0002"
    assert frame.drop(index=["d0120", "d0121"])["split_leak_source"].isna().all()
    assert scores_shape(ws, run_id) == (len(frame), len(frame.columns) + 1)  # + the id, here the index
    out = tmp_path / "scores.csv"  # and through the CLI
    assert main(["export", "--workspace", str(scored), "--what", "scores", "--format", "csv", "--out", str(out)]) == 0
    exported = pd.read_csv(out).set_index("id")
    assert exported.loc["d0121", "split_leak_source"] == "d0002" and pd.isna(exported.loc["d0001", "split_leak_source"])


def test_the_scores_export_types_flags_as_booleans_and_names_groups_as_the_duplicates_page(
        scored: Path, tmp_path: Path) -> None:
    from backend.jobs.duplicates_job import duplicate_groups
    from backend.storage.score_export import scores_frame

    ws = Workspace.open(scored)
    run_id = runs.latest_run(ws, "score")["run_id"]
    frame = scores_frame(ws, run_id).set_index("id")
    flags = [c for c in frame.columns if c.startswith("is_")]
    assert {"is_split_leak", "is_dark", "is_outlier", "is_near_duplicate"} <= set(flags)
    assert all(str(frame[c].dtype) in ("boolean", "bool") for c in flags)
    assert frame.loc["d0120", "is_split_leak"] == True  # noqa: E712
    assert frame.loc["d0001", "is_split_leak"] == False  # noqa: E712 - the train copy does not leak
    assert frame.loc["d0124", "is_dark"] is pd.NA  # no image: the check could not run
    assert frame.loc["d0001", "duplicate_group"] == frame.loc["d0120", "duplicate_group"] == "exact-d0001"
    assert frame.loc["d0003", "duplicate_group"] is None
    page, _ = duplicate_groups(ws)  # the same groups under the same names as the Duplicates page
    exported = frame["near_duplicate_group"].dropna()
    near = page[page["kind"] == "near"].set_index("id")["group"]
    assert len(exported) >= 2 and exported.to_dict() == near.to_dict()
    assert frame.loc["d0121", "near_duplicate_group"] == "near-d0002"
    out = tmp_path / "scores.csv"
    assert main(["export", "--workspace", str(scored), "--what", "scores", "--format", "csv", "--out", str(out)]) == 0
    text = pd.read_csv(out, dtype=str, keep_default_na=False).set_index("id")
    assert text.loc["d0120", "is_split_leak"] == "True" and text.loc["d0002", "is_split_leak"] == "False"
    assert text.loc["d0124", "is_dark"] == "" and text.loc["d0121", "near_duplicate_group"] == "near-d0002"
    out = tmp_path / "scores.parquet"
    assert main(["export", "--workspace", str(scored), "--what", "scores", "--format", "parquet", "--out", str(out)]) == 0
    back = pd.read_parquet(out).set_index("id")
    assert str(back["is_dark"].dtype) == "boolean" and back.loc["d0124", "is_dark"] is pd.NA


def sample_view_script(root: str, sample_id: str, run_id: str) -> None:
    from app.components.sample_view import sample_detail

    sample_detail(root, sample_id, score_run=run_id)


def test_the_sample_view_names_the_train_sample_a_leak_copies(scored: Path) -> None:
    from streamlit.testing.v1 import AppTest

    from tests.app.app_testkit import APP_TIMEOUT_S

    run_id = runs.latest_run(Workspace.open(scored), "score")["run_id"]
    for sample_id, source in (("d0121", "d0002"), ("d0003", None)):
        at = AppTest.from_function(sample_view_script, kwargs={"root": str(scored), "sample_id": sample_id,
                                                               "run_id": run_id}, default_timeout=APP_TIMEOUT_S).run()
        assert not at.exception, at.exception
        warnings = [w.value for w in at.warning]
        if source is None:
            assert not any("Split leak" in w for w in warnings)
        else:
            assert any(f"copy of train sample **{source}**" in w for w in warnings), warnings


def test_the_leak_notice_says_resolved_once_a_copy_is_dropped(scored: Path, tmp_path: Path) -> None:
    import shutil

    from streamlit.testing.v1 import AppTest

    from backend.storage import decisions
    from tests.app.app_testkit import APP_TIMEOUT_S

    root = Path(shutil.copytree(scored, tmp_path / "ws"))
    run_id = runs.latest_run(Workspace.open(root), "score")["run_id"]
    decisions.decide(Workspace.open(root), "drop", ["d0002"], source="cli")
    at = AppTest.from_function(sample_view_script, kwargs={"root": str(root), "sample_id": "d0121", "run_id": run_id},
                               default_timeout=APP_TIMEOUT_S).run()
    assert not at.exception, at.exception
    assert not any("Split leak" in w.value for w in at.warning)
    assert any("Split leak, resolved" in i.value and "d0002 is dropped" in i.value for i in at.info)


def test_overview_shows_the_health_counts(scored: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    from tests.app.app_testkit import APP_TIMEOUT_S, MAIN_SCRIPT

    monkeypatch.setenv("THRESHER_WORKSPACE", str(scored))
    at = AppTest.from_file(MAIN_SCRIPT, default_timeout=APP_TIMEOUT_S).run()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "split leaks (val/test copies of train): **2**" in text and "exact duplicates: **2**" in text
    assert "dark: **1**" in text


def test_stage_measures_blur_against_the_neighbours_and_their_voted_class(
        planted: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from backend.jobs import health_stage
    from backend.scoring import health
    from backend.scoring.knn import knn_search

    seen = {}
    real = health.image_quality

    def spy(stats, **kwargs):
        seen.update(kwargs)
        return real(stats, **kwargs)

    monkeypatch.setattr(health_stage.health, "image_quality", spy)
    ws = Workspace.open(planted)
    data = load_dataset(ws, ws.embedding_keys()[0])
    columns, _ = health_scores(ws, data)
    idx, _ = knn_search(data.unit, 10, seed=0)
    np.testing.assert_array_equal(seen["neighbor_indices"], idx)
    np.testing.assert_array_equal(seen["groups"], health.content_groups(data.labels, idx))
    assert np.isfinite(columns["blurry_score"]).sum() == len(data.ids) - 1  # all but the sample without an image


def test_health_counts_without_a_health_run() -> None:
    from app.components.overview import health_counts

    old = pd.DataFrame({"run_id": ["r1"], "summary": [{"n_samples": 3}]})
    assert health_counts(old) is None
    new = pd.DataFrame({"run_id": ["r2", "r1"], "summary": [{"health": {"counts": {"is_dark": 4}}}, {}]})
    run_id, counts = health_counts(new)
    assert run_id == "r2" and counts["dark"] == 4 and counts["blurry"] == 0


def test_image_checks_read_what_ingest_stored_and_fall_back_to_the_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An image folder's statistics come from ingest (no file decoded again); without the table
    (a workspace ingested before it) the files are read: the same columns, bit for bit."""
    import shutil

    from backend.jobs import health_stage

    digits = load_digits()
    rng = np.random.default_rng(0)
    for i in range(40):
        img = np.kron(digits.images[i] / 16.0, np.ones((4, 4)))[:, :, None] * rng.uniform(0.5, 1, 3)
        if i == 7:
            img = img * 0.2  # planted: dark
        path = tmp_path / "images" / str(digits.target[i]) / f"d{i:02d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((img * 255).round().astype(np.uint8), "RGB").save(path)
    ws_root = tmp_path / "ws"
    assert main(["ingest", "--workspace", str(ws_root), str(tmp_path / "images"), "--workers", "1"]) == 0
    assert main(["embed", "--workspace", str(ws_root), "--model", "pixels-8"]) == 0
    ws = Workspace.open(ws_root)
    data = load_dataset(ws, "pixels-8")
    quality = [c for c in (*health_stage.FLAG_COLUMNS, *health_stage.SCORE_COLUMNS)
               if c.removeprefix("is_").removesuffix("_score") in health_stage.health.QUALITY_CHECKS]

    def no_decoding(path: str) -> np.ndarray:
        raise AssertionError(f"{path} decoded again: ingest stored its statistics")

    monkeypatch.setattr(health_stage, "read_image", no_decoding)
    stored, summary = health_scores(ws, data)
    assert summary["n_image_stats_from_ingest"] == summary["n_images_read"] == 40
    monkeypatch.undo()
    shutil.rmtree(ws.lance_dir / "image_stats.lance")
    read, summary = health_scores(ws, data)
    assert summary["n_image_stats_from_ingest"] == 0 and summary["n_images_read"] == 40
    for column in quality:
        np.testing.assert_array_equal(stored[column], read[column], err_msg=column)
    paths = ws.samples(columns=["id", "path"]).set_index("id").loc[data.ids, "path"]
    assert [Path(p).name for p in paths[stored["is_dark"] == 1]] == ["d07.png"]


def test_every_health_column_says_what_it_means() -> None:
    """The sample view explains each column from the score catalogue: none of the health columns
    may be left blank, and the flags name the threshold they use."""
    from backend.jobs.health_stage import FLAG_COLUMNS, SCORE_COLUMNS
    from backend.jobs.score_catalog import score_meanings

    meanings = score_meanings()
    assert set(FLAG_COLUMNS) | set(SCORE_COLUMNS) <= set(meanings)
    assert "3.5" in meanings["is_blurry"].meaning and "0.3" in meanings["is_dark"].meaning
