"""The fast embedding path on the CPU: the loader with and without workers, the CUDA options
(channels-last, autocast, device JPEG decoding, batch sizes that fit) and their CPU fallbacks,
and the one-at-a-time baseline against the batched path. Random weights, nothing downloaded."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.embed import EmbedderError, get_embedder
from tests.embed.conftest import CHEAP_CLIP_MODEL, write_corrupt, write_images

torch = pytest.importorskip("torch")


def small_tensor(image: Image.Image) -> torch.Tensor:
    """A picklable stand-in for a model's preprocess: 8x8 float (3, 8, 8)."""
    pixels = np.asarray(image.resize((8, 8), Image.Resampling.BILINEAR), dtype=np.float32)
    return torch.from_numpy(pixels / 255.0).permute(2, 0, 1)


def write_jpegs(folder: Path, sizes: list[tuple[int, int]], *, seed: int = 0) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i, (width, height) in enumerate(sizes):
        field = Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
        path = folder / f"photo{i}.jpg"
        field.resize((width, height), Image.Resampling.BICUBIC).save(path, quality=92)
        paths.append(str(path))
    return paths


@pytest.fixture
def jpeg_mix(tmp_path: Path, mixed_paths: list[str]) -> list[str]:
    """JPEGs of several sizes, PNGs, a corrupt PNG, a missing file and a broken JPEG."""
    jpegs = write_jpegs(tmp_path / "jpegs", [(40, 30), (40, 30), (23, 57), (300, 200)])
    broken = tmp_path / "jpegs" / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 truncated, not a JPEG body")
    return [jpegs[0], mixed_paths[0], jpegs[1], str(broken), mixed_paths[1], jpegs[2],
            mixed_paths[4], jpegs[3]]


def embed_all(embedder, paths, **kwargs):
    batches = list(embedder.iter_batches(paths, **kwargs))
    positions = np.concatenate([batch.positions for batch in batches])
    vectors = np.concatenate([batch.vectors for batch in batches])
    failed = sorted(item for batch in batches for item in batch.failed)
    return positions, vectors, failed


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def seeded_embedder(**options):
    torch.manual_seed(0)
    return get_embedder(CHEAP_CLIP_MODEL, None, device="cpu", **options)


@pytest.mark.parametrize("pass_jpeg_bytes", [False, True])
def test_loader_yields_the_same_batches_with_and_without_workers(jpeg_mix, pass_jpeg_bytes):
    from backend.embed.loader import image_loader

    def load(num_workers):
        loader = image_loader(jpeg_mix, small_tensor, batch_size=3, num_workers=num_workers,
                              pass_jpeg_bytes=pass_jpeg_bytes)
        return list(loader)

    serial, parallel = load(0), load(2)
    assert len(serial) == len(parallel) == 3
    for one, two in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(one.positions, two.positions)
        np.testing.assert_array_equal(one.encoded_positions, two.encoded_positions)
        assert one.failed == two.failed
        assert (one.images is None) == (two.images is None)
        if one.images is not None:
            assert torch.equal(one.images, two.images)
        assert all(torch.equal(a, b) for a, b in zip(one.encoded, two.encoded, strict=True))
    every = sorted(p for batch in serial for p in [*batch.positions, *batch.encoded_positions,
                                                   *(pos for pos, _ in batch.failed)])
    assert every == list(range(len(jpeg_mix)))
    encoded = sorted(p for batch in serial for p in batch.encoded_positions)
    # only readable JPEG files travel as bytes; the broken JPEG is read as bytes too (decode fails later)
    assert encoded == ([0, 2, 3, 5, 7] if pass_jpeg_bytes else [])
    failed = dict(item for batch in serial for item in batch.failed)
    assert sorted(failed) == ([4, 6] if pass_jpeg_bytes else [3, 4, 6])


def test_channels_last_and_bf16_autocast_keep_the_embeddings(low_torch_threads, tmp_path):
    paths = write_images(tmp_path, 3)
    reference = seeded_embedder()
    assert (reference.autocast_dtype, reference.channels_last) == (None, False)  # CPU defaults
    expected = embed_all(reference, paths)[1]
    channels_last = seeded_embedder(channels_last=True)
    assert channels_last._net.visual.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_allclose(embed_all(channels_last, paths)[1], expected, rtol=1e-4, atol=1e-4)
    bf16 = seeded_embedder(precision="bf16")
    assert bf16.autocast_dtype == torch.bfloat16
    vectors = embed_all(bf16, paths)[1]
    assert vectors.dtype == np.float32
    assert cosines(vectors, expected).min() > 0.995
    assert not np.array_equal(vectors, expected)  # autocast really ran in bfloat16


def test_unknown_precision_is_refused(low_torch_threads):
    from backend.embed.device import resolve_precision

    with pytest.raises(EmbedderError, match="unknown precision 'fp8'"):
        resolve_precision("fp8", "cpu")
    assert resolve_precision("auto", "cpu") is None
    assert resolve_precision("fp32", "cuda") is None


def test_cuda_options_fall_back_to_the_cpu_without_cuda(low_torch_threads, monkeypatch, caplog,
                                                        jpeg_mix):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level(logging.WARNING, logger="backend.embed.openclip"):
        torch.manual_seed(0)
        embedder = get_embedder(CHEAP_CLIP_MODEL, None, device=None, gpu_decode=True)
    assert embedder.device == "cpu" and not embedder.gpu_decode
    assert embedder.autocast_dtype is None and not embedder.channels_last
    assert "GPU JPEG decoding needs CUDA" in caplog.text and "decoded on the CPU" in caplog.text
    assert embedder.default_batch_size() == 64
    positions, vectors, failed = embed_all(embedder, jpeg_mix, batch_size=4, num_workers=1)
    assert positions.tolist() == [0, 1, 2, 5, 7] and vectors.shape == (5, embedder.dim)
    assert [position for position, _ in failed] == [3, 4, 6]
    assert get_embedder("pixels-4", gpu_decode=True).device == "cpu"


def test_device_decode_matches_pil_decoding(clip_embedder, jpeg_mix, monkeypatch):
    """The GPU-decode branch (bytes from the workers, decode, tensor preprocessing) run on the CPU
    with a PIL decoder in nvJPEG's place gives the vectors of the PIL path."""
    from backend.embed.gpu_decode import pil_decoder

    expected = embed_all(clip_embedder, jpeg_mix, batch_size=4)
    monkeypatch.setattr(clip_embedder, "_jpeg_decoder", None)
    assert clip_embedder.enable_device_decode() is False  # nvJPEG needs CUDA
    assert clip_embedder.enable_device_decode(pil_decoder("cpu")) is True
    assert clip_embedder.gpu_decode
    decoded = embed_all(clip_embedder, jpeg_mix, batch_size=4, num_workers=2)
    np.testing.assert_array_equal(decoded[0], expected[0])
    assert [p for p, _ in decoded[2]] == [p for p, _ in expected[2]] == [3, 4, 6]
    assert dict(decoded[2])[3].startswith("corrupt image: JPEG decode failed")
    assert cosines(decoded[1], expected[1]).min() > 0.999


def test_tensor_preprocess_matches_the_pil_transform(clip_embedder, tmp_path):
    from backend.embed.gpu_decode import TensorPreprocess, pil_decoder
    from backend.embed.loader import read_jpeg_bytes

    paths = write_jpegs(tmp_path, [(300, 200), (100, 260), (224, 224), (50, 40)], seed=3)
    encoded = [read_jpeg_bytes(path) for path in paths]
    decoded = pil_decoder()(encoded)
    batched = TensorPreprocess(clip_embedder.preprocess).batch(decoded)
    for row, path in enumerate(paths):
        reference = clip_embedder.preprocess(Image.open(path).convert("RGB"))
        assert batched[row].shape == reference.shape == (3, 224, 224)
        # one grey level of 255, in normalised units (std ~0.27), where the resamplers round apart
        assert (batched[row] - reference).abs().mean() < 0.01
        assert (batched[row] - reference).abs().max() < 0.1


def test_decode_failures_fall_back_then_are_reported():
    from backend.embed.gpu_decode import decode_encoded, pil_decoder

    good = write_jpegs_bytes(2)

    def picky(encoded):  # like nvJPEG on a CMYK file: rejects good[1], so the batched call too
        if any(data is good[1] for data in encoded):
            raise RuntimeError("nvjpeg says no")
        return pil_decoder()(encoded)

    broken = torch.tensor(list(b"\xff\xd8\xff garbage"), dtype=torch.uint8)
    positions = np.array([5, 6, 7])
    kept, images, failed = decode_encoded(picky, [good[0], broken, good[1]], positions,
                                          fallback=pil_decoder())
    assert kept == [5, 7] and [tuple(image.shape) for image in images] == [(3, 7, 9)] * 2
    assert [p for p, _ in failed] == [6] and failed[0][1].startswith("corrupt image: JPEG decode")
    kept, images, failed = decode_encoded(picky, [good[0], good[1]], positions[:2])
    assert kept == [5] and failed == [(6, "corrupt image: JPEG decode failed (nvjpeg says no)")]


def write_jpegs_bytes(count: int) -> list[torch.Tensor]:
    import io

    out = []
    for i in range(count):
        buffer = io.BytesIO()
        Image.new("RGB", (9, 7), (10 * i, 50, 90)).save(buffer, format="JPEG")
        out.append(torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8))
    return out


def test_batch_size_ladder_halves_until_it_fits():
    from backend.embed.device import largest_fitting_batch

    tried, freed = [], []

    def try_batch(n):
        tried.append(n)
        if n > 300:
            raise torch.OutOfMemoryError("CUDA out of memory")

    assert largest_fitting_batch(try_batch, 1024, torch.OutOfMemoryError,
                                 on_oom=lambda: freed.append(1)) == 256
    assert tried == [1024, 512, 256] and len(freed) == 2

    def never(n):
        raise torch.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(torch.OutOfMemoryError):
        largest_fitting_batch(never, 4, torch.OutOfMemoryError)


def test_out_of_memory_mid_run_encodes_the_batch_in_halves(clip_embedder, tmp_path, monkeypatch,
                                                           caplog):
    paths = write_images(tmp_path, 5)
    expected = embed_all(clip_embedder, paths, batch_size=5)[1]
    real = clip_embedder._net.encode_image
    sizes = []

    def small_memory(images):
        sizes.append(len(images))
        if len(images) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real(images)

    monkeypatch.setattr(clip_embedder._net, "encode_image", small_memory)
    with caplog.at_level(logging.WARNING, logger="backend.embed.openclip"):
        vectors = embed_all(clip_embedder, paths, batch_size=5)[1]
    assert sizes == [5, 2, 3, 1, 2] and "encoding them in halves" in caplog.text
    np.testing.assert_allclose(vectors, expected, rtol=1e-4, atol=1e-5)


def test_one_at_a_time_baseline_gives_the_batched_embeddings(clip_embedder, tmp_path):
    from backend.embed.throughput import end_to_end, one_at_a_time

    paths = write_images(tmp_path, 5)
    corrupt = write_corrupt(tmp_path / "bad.png")
    batched, batched_rate = end_to_end(clip_embedder, paths + [corrupt], batch_size=4, num_workers=1)
    singles, single_rate = one_at_a_time(clip_embedder, paths)
    assert batched.shape == singles.shape == (5, clip_embedder.dim)
    np.testing.assert_allclose(singles, batched, rtol=1e-4, atol=1e-5)
    assert single_rate > 0 and batched_rate > 0


def test_bench_script_runs_on_the_cpu_and_writes_its_results(low_torch_threads, tmp_path):
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location(
        "embed_throughput", Path(__file__).resolve().parents[2] / "bench" / "embed_throughput.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "embed_throughput.json"
    assert bench.main(["--model", CHEAP_CLIP_MODEL, "--n", "6", "--batch-size", "3", "--num-workers",
                       "1", "--n-single", "2", "--rounds", "2", "--skip-precision", "--gpu-decode",
                       "--images", str(tmp_path / "jpegs"), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["device"] == "cpu" and result["batch_size"] == 3 and result["num_workers"] == 1
    assert result["gpu_decode"] is False  # asked for, fell back to the CPU without CUDA
    assert set(result["images_per_s"]) == {"model_only", "end_to_end", "one_at_a_time"}
    assert [r["end_to_end"]["images"] for r in result["rounds"]] == [3, 3]
    assert result["one_at_a_time_max_rel_diff_to_batched"] < 1e-4
    assert len(list((tmp_path / "jpegs").glob("*.jpg"))) == 6


def test_cuda_branches_run_on_the_cpu_with_the_cuda_calls_faked(clip_embedder, tmp_path, monkeypatch):
    """The CUDA-only code (batch-size ladder, asynchronous copy back with an event, cache
    emptying on OOM) runs here with ``_on_cuda`` forced and torch.cuda's calls replaced."""
    from backend.embed import openclip

    paths = write_images(tmp_path, 5)
    expected = embed_all(clip_embedder, paths, batch_size=2)
    events = []

    class FakeEvent:
        def record(self):
            events.append("record")

        def synchronize(self):
            events.append("synchronize")

    monkeypatch.setattr(type(clip_embedder), "_on_cuda", property(lambda self: True))
    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: events.append("sync"))
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: events.append("empty_cache"))
    monkeypatch.setattr(openclip, "MAX_CUDA_BATCH_SIZE", 32)
    real = clip_embedder._net.encode_image

    def fits_eight(images):
        if len(images) > 8:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real(images)

    monkeypatch.setattr(clip_embedder._net, "encode_image", fits_eight)
    assert clip_embedder.default_batch_size() == 8  # 32, 16 fail; 8 fits
    assert events == ["empty_cache", "empty_cache", "sync"]
    events.clear()
    with warnings.catch_warnings():  # pin_memory without an accelerator: torch warns, skips it
        warnings.simplefilter("ignore")
        found = embed_all(clip_embedder, paths, batch_size=2)
    np.testing.assert_array_equal(found[0], expected[0])
    np.testing.assert_allclose(found[1], expected[1], rtol=1e-5, atol=1e-6)
    assert events == ["record", "record", "synchronize", "record", "synchronize", "synchronize"]
