"""Similarity search on a constructed workspace: 5 distinct 6x6 images per class, one file copied
twice (its duplicates), embedded by the real embed job with the pixels embedder (no torch)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend import cli
from backend.config import EmbedSettings
from backend.jobs.embed_job import embed
from backend.jobs.ingest_job import ingest
from backend.jobs.search_job import (
    RESULT_COLUMNS,
    SearchError,
    image_search,
    like_search,
    text_search,
    text_search_refusal,
)
from backend.storage import NotFoundError, Workspace, vector_index

KEY = "pixels-6"
CLASSES = ("a", "b", "c")


@pytest.fixture(scope="module")
def searchable(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    base = tmp_path_factory.mktemp("search")
    rng = np.random.default_rng(0)
    for name in CLASSES:
        (base / "images" / name).mkdir(parents=True)
        for i in range(5):
            pixels = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(base / "images" / name / f"{name}{i}.png")
    original = base / "images" / "a" / "a0.png"
    shutil.copy(original, base / "images" / "b" / "copy-of-a0.png")  # a duplicate under another label
    shutil.copy(original, base / "images" / "c" / "copy-of-a0.png")
    ws = Workspace.open(base / "ws", create=True)
    ingest(ws, base / "images")
    embed(ws, EmbedSettings(model=KEY), show_progress=False)
    return ws


def sample_id(ws: Workspace, file_name: str) -> str:
    samples = ws.samples(columns=["id", "path"])
    return samples.loc[samples["path"].str.endswith(file_name), "id"].item()


def test_like_search_returns_the_sample_then_its_duplicates(searchable: Workspace) -> None:
    query = sample_id(searchable, "a/a0.png")
    copies = {sample_id(searchable, "b/copy-of-a0.png"), sample_id(searchable, "c/copy-of-a0.png")}
    hits = like_search(searchable, query, top=5)
    assert list(hits.columns) == RESULT_COLUMNS
    assert hits["id"].iloc[0] == query
    assert set(hits["id"].iloc[1:3]) == copies
    assert hits["similarity"].iloc[:3].tolist() == [1.0, 1.0, 1.0]
    assert hits["similarity"].iloc[3] < 1.0
    assert sorted(hits["label"].iloc[:3]) == ["a", "b", "c"]
    assert hits["path"].iloc[0].endswith("a/a0.png")


def test_like_search_matches_a_brute_force_reference(searchable: Workspace) -> None:
    ids, vectors, _ = searchable.load_embeddings(KEY)
    row = 7
    reference = np.sort(vectors @ vectors[row])[::-1][:6]
    hits = like_search(searchable, ids[row], top=6)
    np.testing.assert_allclose(np.sort(hits["similarity"].to_numpy())[::-1], reference, atol=1e-4)


def test_image_search_embeds_the_file_with_the_same_pixels_model(searchable: Workspace) -> None:
    path = searchable.samples(columns=["id", "path"]).set_index("id")["path"]
    query = sample_id(searchable, "c/c3.png")
    hits = image_search(searchable, path[query], top=3)
    assert hits["id"].iloc[0] == query
    assert hits["similarity"].iloc[0] == pytest.approx(1.0, abs=1e-4)
    assert hits["similarity"].iloc[1] < 0.999


def test_image_search_refuses_a_missing_or_unreadable_file(searchable: Workspace, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no image file"):
        image_search(searchable, tmp_path / "nothing.png")
    broken = tmp_path / "broken.png"
    broken.write_text("not an image")
    with pytest.raises(SearchError, match="cannot read"):
        image_search(searchable, broken)


def test_text_search_on_pixel_embeddings_is_refused_in_one_line(searchable: Workspace) -> None:
    refusal = text_search_refusal(searchable, KEY)
    assert refusal is not None and "\n" not in refusal
    assert "needs a CLIP model" in refusal and "thresher embed" in refusal and "--model ViT-B-32" in refusal
    with pytest.raises(SearchError, match="needs a CLIP model"):
        text_search(searchable, "a photo of a cat")
    with pytest.raises(NotFoundError, match="pixels-6"):  # an unknown key names the stored ones
        text_search(searchable, "a cat", embedding_key="ViT-B-32__openai")


def test_imported_vectors_have_no_model_for_a_query(searchable: Workspace, tmp_path: Path) -> None:
    ws = Workspace.open(Path(shutil.copytree(searchable.root, tmp_path / "ws")))
    ids, vectors, norms = ws.load_embeddings(KEY)
    ws.append_embeddings("imported-x", ids, vectors, norms)
    path = ws.samples(columns=["path"])["path"].iloc[0]
    with pytest.raises(SearchError, match="not made by `thresher embed`"):
        image_search(ws, path, embedding_key="imported-x")
    assert "imported vectors" in text_search_refusal(ws, "imported-x")
    assert like_search(ws, ids[0], embedding_key="imported-x")["id"].iloc[0] == ids[0]  # needs no model


def test_unknown_sample_is_named(searchable: Workspace) -> None:
    with pytest.raises(NotFoundError, match="no sample 'nope' in this workspace"):
        like_search(searchable, "nope")


def test_index_threshold(searchable: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    min_values = vector_index.INDEX_MIN_VALUES
    assert not vector_index.needs_index(min_values // 64 - 1, 64)
    assert vector_index.needs_index(min_values // 64, 64)
    assert vector_index.needs_index(min_values // 512 + 1, 512)  # fewer rows of longer vectors
    assert not vector_index.needs_index(min_values // 512 - 1, 512)

    ws = Workspace.open(Path(shutil.copytree(searchable.root, tmp_path / "ws")))
    query = sample_id(ws, "b/b2.png")
    exact = like_search(ws, query, top=4)
    assert not vector_index.ensure_index(ws, KEY)  # 17 x 108 values: exact search, no index
    assert vector_index.index_state(ws, KEY) is None

    monkeypatch.setattr(vector_index, "INDEX_MIN_VALUES", 17 * 108)
    assert vector_index.ensure_index(ws, KEY)
    assert vector_index.index_state(ws, KEY) == (17, 0)
    assert not vector_index.ensure_index(ws, KEY)  # up to date: not rebuilt
    indexed = like_search(ws, query, top=4)
    # every partition probed: the same neighbours, up to near-ties (the index and the exact scan round
    # a distance differently, so two neighbours 1e-7 apart may swap)
    assert indexed["id"].iloc[0] == exact["id"].iloc[0] == query
    assert np.allclose(indexed["similarity"], exact["similarity"], atol=2e-4)
    assert set(indexed["id"]) == set(exact["id"]) or np.isclose(
        exact["similarity"].iloc[-1], indexed["similarity"].iloc[-1], atol=2e-4)

    ids, vectors, norms = ws.load_embeddings(KEY)
    ws.append_embeddings(KEY, [f"new-{i}" for i in range(3)], vectors[:3], norms[:3])
    assert vector_index.index_state(ws, KEY) == (17, 3)
    assert vector_index.ensure_index(ws, KEY)  # 3 of 20 rows unindexed: over STALE_SHARE, rebuilt
    assert vector_index.index_state(ws, KEY) == (20, 0)


def test_cli_search_like_and_json(searchable: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    query = sample_id(searchable, "a/a0.png")
    assert cli.main(["search", "-w", str(searchable.root), "--like", query, "--top", "3", "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in records][0] == query and set(records[0]) == set(RESULT_COLUMNS)

    path = searchable.samples(columns=["id", "path"]).set_index("id")["path"][query]
    assert cli.main(["search", "-w", str(searchable.root), "--image", path, "--top", "2"]) == 0
    assert query in capsys.readouterr().out

    assert cli.main(["search", "-w", str(searchable.root), "cat", "--like", query]) == 2
    assert "exactly one of TEXT, --like ID or --image FILE (got TEXT and --like)" in capsys.readouterr().err
    assert cli.main(["search", "-w", str(searchable.root), "a cat"]) == 2
    assert "needs a CLIP model" in capsys.readouterr().err
