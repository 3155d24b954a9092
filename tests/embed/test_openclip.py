"""open_clip embedders with random weights on tiny images: shapes, bad files, workers, text,
checkpoint round trips, keys and errors. Offline: nothing is ever downloaded."""

from __future__ import annotations

import re

import numpy as np
import pytest

from backend.embed import EmbedderError, get_embedder
from backend.embed import weights as weights_module
from tests.embed.conftest import CHEAP_CLIP_MODEL, write_images

SAFE_KEY = re.compile(r"^[A-Za-z0-9_.-]+$")


def embed_all(embedder, paths, **kwargs):
    batches = list(embedder.iter_batches(paths, **kwargs))
    positions = np.concatenate([batch.positions for batch in batches])
    vectors = np.concatenate([batch.vectors for batch in batches])
    failed = [item for batch in batches for item in batch.failed]
    return positions, vectors, failed


def test_random_model_embeds_good_images_and_reports_bad_ones(clip_embedder, mixed_paths):
    torch = pytest.importorskip("torch")
    assert clip_embedder.key == f"{CHEAP_CLIP_MODEL}__random"
    assert clip_embedder.pretrained is None
    assert (clip_embedder.dim, clip_embedder.device) == (256, "cpu")
    batches = clip_embedder.iter_batches(mixed_paths, batch_size=4)
    first = next(batches)
    assert not torch.is_inference_mode_enabled()  # no mode leaks out across the yield
    rest = list(batches)
    positions = np.concatenate([first.positions] + [batch.positions for batch in rest])
    assert positions.dtype == np.int64 and positions.tolist() == [0, 2, 3, 5]
    assert first.vectors.dtype == np.float32 and first.vectors.shape == (3, 256)
    assert np.isfinite(first.vectors).all() and (np.linalg.norm(first.vectors, axis=1) > 0).all()
    reasons = dict(first.failed + [item for batch in rest for item in batch.failed])
    assert sorted(reasons) == [1, 4]
    assert reasons[1].startswith("corrupt image") and reasons[4].startswith("missing file")


def test_worker_processes_give_identical_output(clip_embedder, mixed_paths):
    serial = embed_all(clip_embedder, mixed_paths, batch_size=4, num_workers=0)
    parallel = embed_all(clip_embedder, mixed_paths, batch_size=4, num_workers=2)
    np.testing.assert_array_equal(serial[0], parallel[0])
    np.testing.assert_allclose(serial[1], parallel[1], rtol=0, atol=1e-6)
    assert serial[2] == parallel[2]


def test_batch_size_does_not_change_vectors(clip_embedder, tmp_path):
    paths = write_images(tmp_path, 3)
    one_batch = embed_all(clip_embedder, paths, batch_size=8)[1]
    singles = embed_all(clip_embedder, paths, batch_size=1)[1]
    np.testing.assert_allclose(one_batch, singles, rtol=1e-4, atol=1e-5)


def test_texts_embed_deterministically_into_the_same_space(clip_embedder):
    texts = ["a photo of a cat", "a photo of a dog", "a photo of a cat"]
    vectors = clip_embedder.encode_texts(texts)
    assert vectors.dtype == np.float32 and vectors.shape == (3, clip_embedder.dim)
    np.testing.assert_array_equal(vectors[0], vectors[2])
    assert not np.allclose(vectors[0], vectors[1])
    np.testing.assert_allclose(
        clip_embedder.encode_texts(["a photo of a cat"])[0], vectors[0], atol=1e-5
    )
    assert clip_embedder.encode_texts([]).shape == (0, clip_embedder.dim)


def test_checkpoint_round_trip_gives_identical_embeddings(clip_embedder, tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    paths = write_images(tmp_path / "images", 3)
    state = clip_embedder._net.state_dict()
    plain = tmp_path / "plain.pt"
    torch.save(state, plain)
    training = tmp_path / "epoch_1.pt"  # what open_clip's training loop writes (DDP prefix)
    torch.save(
        {"epoch": 1, "name": "test", "state_dict": {f"module.{k}": v for k, v in state.items()}},
        training,
    )
    expected = embed_all(clip_embedder, paths)[1]
    expected_text = clip_embedder.encode_texts(["a red square"])
    monkeypatch.chdir(tmp_path)  # a relative path works and comes back absolute
    for checkpoint, given in ((plain, str(plain)), (training, "epoch_1.pt")):
        loaded = get_embedder(CHEAP_CLIP_MODEL, given, device="cpu")
        assert re.fullmatch(rf"{CHEAP_CLIP_MODEL}__ckpt-[0-9a-f]{{8}}", loaded.key)
        assert loaded.pretrained == str(checkpoint.resolve())
        np.testing.assert_array_equal(embed_all(loaded, paths)[1], expected)
        np.testing.assert_array_equal(loaded.encode_texts(["a red square"]), expected_text)
        del loaded
    # the key follows the content: other weights, another key
    assert weights_module.checkpoint_digest(plain) != weights_module.checkpoint_digest(training)


def test_keys_are_stable_and_storage_safe(clip_embedder, tmp_path):
    assert SAFE_KEY.match(clip_embedder.key)
    assert get_embedder("pixels").key == "pixels-16"
    first = tmp_path / "a" / "weights.pt"
    first.parent.mkdir()
    first.write_bytes(b"same bytes")
    moved = tmp_path / "b c" / "weights (copy).pt"
    moved.parent.mkdir()
    moved.write_bytes(b"same bytes")
    assert weights_module.checkpoint_digest(first) == weights_module.checkpoint_digest(moved)
    assert re.fullmatch(r"[0-9a-f]{8}", weights_module.checkpoint_digest(first))


def test_bad_checkpoints_raise_embedder_errors(low_torch_threads, tmp_path):
    torch = low_torch_threads
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(EmbedderError, match="cannot load checkpoint"):
        get_embedder(CHEAP_CLIP_MODEL, str(garbage), device="cpu")
    wrong = tmp_path / "wrong.pt"
    torch.save({"something.else": torch.zeros(2)}, wrong)
    with pytest.raises(EmbedderError, match="cannot load checkpoint"):
        get_embedder(CHEAP_CLIP_MODEL, str(wrong), device="cpu")
    with pytest.raises(EmbedderError, match="checkpoint file not found"):
        get_embedder(CHEAP_CLIP_MODEL, str(tmp_path / "missing.pt"))


def test_unknown_model_and_unknown_weights(low_torch_threads):
    with pytest.raises(EmbedderError, match=r"unknown model 'ViT-Q-32'.*ViT-B-32"):
        get_embedder("ViT-Q-32")
    with pytest.raises(EmbedderError, match="neither a pretrained tag"):
        get_embedder("ViT-B-32", "no-such-tag")


def test_uncached_tag_with_downloads_off_says_what_to_do(low_torch_threads, monkeypatch):
    monkeypatch.setattr(weights_module, "cached_tag_file", lambda tag_config: None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # belt and braces: never touch the network here
    with pytest.raises(EmbedderError, match="not in the local cache") as caught:
        get_embedder("ViT-B-32", "openai", allow_download=True)
    message = str(caught.value)
    assert "THRESHER_ALLOW_DOWNLOADS" in message and "'none'" in message


def test_cached_tag_weights_are_found_without_network(tmp_path, monkeypatch):
    cache = tmp_path / "clip"
    cache.mkdir()
    (cache / "ViT-X.pt").write_bytes(b"weights")
    monkeypatch.setattr(weights_module, "_URL_CACHE", cache)
    config = {"url": "https://example.invalid/abc/ViT-X.pt", "hf_hub": "", "quick_gelu": True}

    class FakeOpenClip:
        @staticmethod
        def get_pretrained_cfg(model, tag):
            return config if tag == "OpenAI" else {}

    choice = weights_module.resolve_weights(FakeOpenClip, "ViT-X", "OpenAI", allow_download=False)
    assert (choice.kind, choice.label) == ("tag", "openai")
    assert choice.checkpoint == str(cache / "ViT-X.pt") and choice.tag_config["quick_gelu"]
    for nothing in (None, "none", "None", " random "):
        assert (
            weights_module.resolve_weights(
                FakeOpenClip, "ViT-X", nothing, allow_download=False
            ).label
            == "random"
        )


def test_device_resolution(low_torch_threads):
    from backend.embed.openclip import resolve_device

    torch = low_torch_threads
    assert resolve_device(None) == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(EmbedderError, match="no CUDA"):
            resolve_device("cuda")
