"""Images per second of the embedding path: model-only, end-to-end from JPEG files, and one image
at a time, for an open_clip model with random weights (throughput does not depend on them, and
nothing is downloaded). Writes ``bench/results/embed_throughput.json``. Not part of the unit tests.

- model-only: forward passes on one random batch already on the device (features copied back).
- end-to-end: :meth:`OpenClipEmbedder.iter_batches` over the generated JPEGs, the path
  ``thresher embed`` takes: decoding in DataLoader worker processes (or, with ``--gpu-decode``,
  nvJPEG on the GPU), pinned memory and non-blocking copies, channels-last and bfloat16 autocast
  on CUDA, one batch in flight ahead. Timed from the call, worker start-up included.
- one-at-a-time: open, preprocess, one forward pass, copy back, next file: how most tools do it.
- precision check (model-only): bfloat16 autocast and channels-last against float32 on the same
  batch, speed and the smallest cosine between the two sets of vectors.

Usage::

    nice -n 5 python bench/embed_throughput.py                  # CPU, a few minutes on 2 cores
    python bench/embed_throughput.py --device cuda --n 20000 --gpu-decode   # on a GPU machine

Targets (issue 13): end-to-end >= 80 % of model-only; on an H100 / H200 above 5,000 images/s.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.embed import get_embedder  # noqa: E402
from backend.embed.base import default_num_workers  # noqa: E402
from backend.embed.throughput import end_to_end, model_only_rate, one_at_a_time  # noqa: E402

log = logging.getLogger("bench.embed_throughput")
OUT = Path(__file__).resolve().parent / "results" / "embed_throughput.json"


def write_jpegs(folder: Path, count: int, size: int, *, seed: int = 0) -> list[str]:
    """``count`` photo-like JPEGs (smooth colour fields plus grain, quality 90) of size x size.

    Smooth fields upsampled from 6 x 6 random colours with noise on top compress to about the
    size of a photo of that size (tens of KB at 256 px), so decoding costs what it would.
    """
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)

    def write(index: int) -> str:
        rng = np.random.default_rng([seed, index])
        field = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
        pixels = np.asarray(field.resize((size, size), Image.Resampling.BICUBIC), dtype=np.int16)
        pixels = np.clip(pixels + rng.normal(0, 12, pixels.shape), 0, 255).astype(np.uint8)
        path = folder / f"img{index:06d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        return str(path)

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        return list(pool.map(write, range(count)))


def precision_check(embedder_args: dict, batch_size: int, n_rounds: int) -> dict:
    """Model-only speed and vectors of float32, channels-last and bfloat16 autocast variants of
    the same random weights, timed one batch each in turn over ``n_rounds`` rounds."""
    import torch

    variants = {"fp32": {"precision": "fp32", "channels_last": False},
                "fp32_channels_last": {"precision": "fp32", "channels_last": True},
                "bf16_autocast": {"precision": "bf16", "channels_last": False}}
    embedders = {}
    for name, options in variants.items():
        torch.manual_seed(0)  # the same random weights for every variant
        embedders[name] = get_embedder(**embedder_args, **options)
    images = torch.randn(batch_size, 3, *embedders["fp32"].image_size,
                         generator=torch.Generator().manual_seed(1))
    vectors = {name: e.encode_pixels(images).float().cpu().numpy() for name, e in embedders.items()}
    seconds = dict.fromkeys(embedders, 0.0)
    for _ in range(n_rounds):
        for name, embedder in embedders.items():
            seconds[name] += batch_size / model_only_rate(embedder, batch_size=batch_size,
                                                          n_batches=1, warmup=0)
    results = {}
    for name in embedders:
        reference, found = vectors["fp32"], vectors[name]
        cosine = (found * reference).sum(1) / (
            np.linalg.norm(found, axis=1) * np.linalg.norm(reference, axis=1))
        results[name] = {"model_only_images_per_s": round(n_rounds * batch_size / seconds[name], 2),
                         "min_cosine_to_fp32": round(float(cosine.min()), 6)}
    return results


def measure_rounds(embedder, paths: list[str], n_rounds: int, *, batch_size: int, workers: int,
                   model_batches: int, n_single: int) -> list[dict]:
    """Model-only, end-to-end and one-at-a-time, each on its share, in ``n_rounds`` interleaved
    rounds: on a shared machine the load drifts, and a ratio of two rates measured side by side
    drifts less than one of rates measured minutes apart."""
    rounds = []
    for index, chunk in enumerate(np.array_split(np.arange(len(paths)), n_rounds)):
        part = [paths[i] for i in chunk]
        batches = max(1, round(model_batches / n_rounds))
        model_rate = model_only_rate(embedder, batch_size=batch_size, n_batches=batches, warmup=0)
        batched, e2e_rate = end_to_end(embedder, part, batch_size=batch_size, num_workers=workers)
        singles_paths = part[: max(1, n_single // n_rounds)]
        singles, single_rate = one_at_a_time(embedder, singles_paths)
        diff = np.abs(singles - batched[: len(singles)]).max() / np.abs(batched).max()
        rounds.append({
            "model_only": {"images": batches * batch_size, "rate": round(model_rate, 3)},
            "end_to_end": {"images": len(batched), "rate": round(e2e_rate, 3)},
            "one_at_a_time": {"images": len(singles), "rate": round(single_rate, 3),
                              "max_rel_diff": round(float(diff), 6)},
            "load_average_1min": round(os.getloadavg()[0], 2),
        })
        log.info("round %d: model-only %.2f, end-to-end %.2f, one at a time %.2f images/s", index,
                 model_rate, e2e_rate, single_rate)
    return rounds


def summed_rate(rounds: list[dict], name: str) -> float:
    """Images over seconds, summed over the rounds."""
    parts = [r[name] for r in rounds]
    return sum(p["images"] for p in parts) / sum(p["images"] / p["rate"] for p in parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default %(default)s)")
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--n", type=int, default=384, help="JPEG files embedded end-to-end")
    parser.add_argument("--image-size", type=int, default=256, help="side of the generated JPEGs")
    parser.add_argument("--batch-size", default="auto",
                        help="images per batch, or auto (64 on the CPU, the largest that fits on CUDA)")
    parser.add_argument("--num-workers", type=int, default=None,
                        help="loader worker processes (default: cores - 1, at most 16)")
    parser.add_argument("--gpu-decode", action="store_true",
                        help="decode the JPEGs on the GPU with nvJPEG (falls back to the CPU without CUDA)")
    parser.add_argument("--n-single", type=int, default=None,
                        help="files for the one-at-a-time loop (default: n / 8, at least 32)")
    parser.add_argument("--model-batches", type=int, default=None,
                        help="timed model-only batches (default: about n images' worth)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="interleaved measuring rounds (default: 3 on the CPU, 1 on CUDA)")
    parser.add_argument("--skip-precision", action="store_true", help="skip the precision check")
    parser.add_argument("--images", type=Path, default=None,
                        help="folder for the generated JPEGs (default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    import torch

    load_before = os.getloadavg()
    embedder_args = {"model": args.model, "pretrained": None, "device": args.device}
    torch.manual_seed(0)
    embedder = get_embedder(**embedder_args, gpu_decode=args.gpu_decode)
    batch_size = embedder.default_batch_size() if args.batch_size == "auto" else int(args.batch_size)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = args.num_workers if args.num_workers is not None else default_num_workers()
    n_single = args.n_single or max(32, args.n // 8)
    args.rounds = args.rounds or (3 if embedder.device == "cpu" else 1)
    model_batches = args.model_batches or max(2, -(-args.n // batch_size))
    log.info("device %s, batch %d, %d workers, GPU decode %s", embedder.device, batch_size, workers,
             embedder.gpu_decode)

    with tempfile.TemporaryDirectory(prefix="embed-bench-") as tmp:
        folder = args.images or Path(tmp)
        started = time.perf_counter()
        paths = write_jpegs(folder, args.n, args.image_size)
        mean_kb = float(np.mean([os.path.getsize(p) for p in paths[:200]]) / 1024)
        log.info("wrote %d JPEGs (%d px, %.1f KB each) in %.1f s", len(paths), args.image_size,
                 mean_kb, time.perf_counter() - started)

        # warm-up: kernels, allocator and (on CUDA) nvJPEG, on a few batches
        end_to_end(embedder, paths[: 2 * batch_size], batch_size=batch_size, num_workers=0)
        rounds = measure_rounds(embedder, paths, args.rounds, batch_size=batch_size, workers=workers,
                                model_batches=model_batches, n_single=n_single)
    model_rate = summed_rate(rounds, "model_only")
    e2e_rate = summed_rate(rounds, "end_to_end")
    single_rate = summed_rate(rounds, "one_at_a_time")
    paired = [r["end_to_end"]["rate"] / r["model_only"]["rate"] for r in rounds]
    device, gpu_decode = embedder.device, embedder.gpu_decode
    precision = {}
    if not args.skip_precision:
        del embedder
        precision = precision_check(embedder_args, min(batch_size, 16), args.rounds)
    result = {
        "device": torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu",
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "cores": cores,
        "model": args.model, "weights": "random (pretrained=None)", "image_input": "224 px",
        "jpeg": {"n": args.n, "side_px": args.image_size, "mean_kb": round(mean_kb, 1)},
        "batch_size": batch_size, "num_workers": workers, "gpu_decode": gpu_decode,
        "gpu_decode_requested": args.gpu_decode,
        "images_per_s": {
            "model_only": round(model_rate, 2),
            "end_to_end": round(e2e_rate, 2),
            "one_at_a_time": round(single_rate, 2),
        },
        "ratio_end_to_end_to_model_only": round(e2e_rate / model_rate, 3),
        "ratio_end_to_end_to_model_only_per_round": [round(x, 3) for x in paired],
        "ratio_end_to_end_to_one_at_a_time": round(e2e_rate / single_rate, 3),
        "one_at_a_time_max_rel_diff_to_batched": max(r["one_at_a_time"]["max_rel_diff"] for r in rounds),
        "rounds": rounds, "n_one_at_a_time": n_single, "model_only_batches": model_batches,
        "precision_check": precision,
        "load_average": {"before": [round(x, 2) for x in load_before],
                         "after": [round(x, 2) for x in os.getloadavg()]},
        "targets": {"ratio_end_to_end_to_model_only": ">= 0.8",
                    "end_to_end_on_h100_h200": "> 5000 images/s"},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["images_per_s"]), "ratio", result["ratio_end_to_end_to_model_only"])
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
