"""The pixels embedder: values, shapes, bad files, workers, key; and no torch needed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.embed import EmbeddedBatch, EmbedderError, get_embedder
from backend.embed.base import storage_safe
from backend.embed.pixels import PixelsEmbedder, parse_pixels_model
from tests.embed.conftest import write_images

REPO_ROOT = Path(__file__).resolve().parents[2]


def collect(batches) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str]]]:
    batches = list(batches)
    assert all(isinstance(batch, EmbeddedBatch) for batch in batches)
    positions = np.concatenate([batch.positions for batch in batches])
    vectors = np.concatenate([batch.vectors for batch in batches])
    failed = [item for batch in batches for item in batch.failed]
    return positions, vectors, failed


def test_known_values_for_solid_and_grey_images(tmp_path):
    red = tmp_path / "red.png"
    Image.new("RGB", (5, 3), (255, 0, 0)).save(red)
    grey = tmp_path / "grey.png"
    Image.new("L", (2, 2), 51).save(grey)
    embedder = get_embedder("pixels-4")
    assert (embedder.key, embedder.dim, embedder.device) == ("pixels-4", 48, "cpu")
    (batch,) = embedder.iter_batches([str(red), str(grey)])
    assert batch.vectors.dtype == np.float32 and batch.vectors.shape == (2, 48)
    np.testing.assert_allclose(batch.vectors[0], np.tile([1.0, 0.0, 0.0], 16))
    np.testing.assert_allclose(batch.vectors[1], np.full(48, 0.2), atol=1e-6)


def test_matches_a_direct_pil_reference(tmp_path):
    paths = write_images(tmp_path, 3)
    positions, vectors, failed = collect(get_embedder("pixels").iter_batches(paths, batch_size=2))
    assert failed == [] and positions.tolist() == [0, 1, 2]
    assert vectors.shape == (3, 3 * 16 * 16)
    for path, vector in zip(paths, vectors, strict=True):
        image = Image.open(path).convert("RGB").resize((16, 16), Image.Resampling.BILINEAR)
        np.testing.assert_allclose(vector, np.asarray(image, dtype=np.float32).ravel() / 255.0)
    assert vectors.min() >= 0.0 and vectors.max() <= 1.0


def test_bad_files_are_reported_and_the_rest_embedded(mixed_paths):
    positions, vectors, failed = collect(
        get_embedder("pixels-8").iter_batches(mixed_paths, batch_size=4)
    )
    assert positions.tolist() == [0, 2, 3, 5]
    assert vectors.shape == (4, 192)
    reasons = dict(failed)
    assert sorted(reasons) == [1, 4]
    assert reasons[1].startswith("corrupt image")
    assert reasons[4].startswith("missing file")


def test_a_batch_of_only_bad_files_still_comes_back(mixed_paths):
    (batch,) = get_embedder("pixels-8").iter_batches([mixed_paths[1], mixed_paths[4]])
    assert batch.positions.shape == (0,) and batch.vectors.shape == (0, 192)
    assert [position for position, _ in batch.failed] == [0, 1]


def test_worker_threads_give_identical_batches(mixed_paths):
    embedder = get_embedder("pixels-8")
    serial = collect(embedder.iter_batches(mixed_paths, batch_size=4, num_workers=0))
    threaded = collect(embedder.iter_batches(mixed_paths, batch_size=4, num_workers=2))
    np.testing.assert_array_equal(serial[0], threaded[0])
    np.testing.assert_array_equal(serial[1], threaded[1])
    assert serial[2] == threaded[2]


def test_empty_input_and_bad_arguments():
    embedder = get_embedder("pixels")
    assert list(embedder.iter_batches([])) == []
    with pytest.raises(ValueError):
        list(embedder.iter_batches(["x.png"], batch_size=0))


def test_names_keys_and_refusals():
    assert parse_pixels_model("ViT-B-32") is None
    assert parse_pixels_model("pixels") == 16 and parse_pixels_model("pixels-8") == 8
    assert get_embedder("pixels").key == "pixels-16" == PixelsEmbedder().key
    assert get_embedder(" pixels-8 ", "none").key == "pixels-8"
    for bad in ("pixels-0", "pixels-x", "pixels-8-8"):
        with pytest.raises(EmbedderError, match="pixels-<size>"):
            get_embedder(bad)
    with pytest.raises(EmbedderError, match="no weights"):
        get_embedder("pixels", "openai")
    with pytest.raises(EmbedderError, match="pick a CLIP model"):
        get_embedder("pixels").encode_texts(["a photo of a cat"])
    assert storage_safe("hf-hub:org/repo name") == "hf-hub-org-repo-name"


def test_pixels_path_does_not_import_torch(tmp_path):
    paths = write_images(tmp_path, 2)
    code = (
        "import sys; from backend.embed import get_embedder; "
        f"b = list(get_embedder('pixels-4').iter_batches({paths!r})); "
        "assert b[0].vectors.shape == (2, 48); assert 'torch' not in sys.modules; print('ok')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
