"""UMAP at a million points: fit on a sample, transform the rest; what the sample costs in quality.

Run: ``nice -n 5 .venv/bin/python bench/umap_scale.py [--n 1000000] [--dim 32]``; writes
``bench/results/umap_scale.json``. Not part of the unit tests.

Protocol
--------
Data: ``bench/scale.py``'s synthetic embeddings (random cluster centres plus low-rank offsets
and noise, renormalised; class = cluster mod classes), here ``--dim`` 32, 200 clusters, 20
classes. Every projection is ``backend.scoring.projection.project_2d`` (what ``thresher
project`` runs) with its defaults (cosine, 15 neighbours, min_dist 0.1, seed 0).

1. ``quality`` at ``--quality-n`` (50,000) points, where a full fit is affordable: the full fit,
   then fit-on-sample with each of ``--fit-samples`` (the rest transformed). For each: wall
   time; trustworthiness (sklearn.manifold.trustworthiness, 10 neighbours, cosine on the input)
   on one fixed random subsample of ``--subsample`` (5,000) points; the 10-NN label accuracy in
   2-D (each point's class against the majority of its 10 nearest 2-D neighbours, over all
   points); and agreement with the full fit: the share of points whose 2-D 10-NN majority label
   is the same in both maps.
2. ``scale`` at ``--n`` points in a fresh process with the default ``fit_sample``: wall time,
   the time to the end of the fit (from the job's log line), the transform time, the CPU
   seconds (wall time over CPU time: how much of a core the shared box gave the run), and the
   peak RSS of the process (sampled every 0.2 s, and ``ru_maxrss``).

Each process first fits and transforms 2,000 points, so that numba's compilation is not in
the times. Times on a shared 2-core box are upper bounds (load averages recorded). UMAP with a seed runs
its optimisation single-threaded (umap-learn's rule for reproducibility).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def embeddings(n: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, dim) float32 unit vectors and (n,) class labels of ``bench/scale.py``'s generator."""
    from bench.scale import clustered_embeddings

    x = np.empty((n, dim), np.float32)
    y = np.empty(n, np.int64)
    for start, rows, labels in clustered_embeddings(n, dim=dim, n_clusters=200, n_classes=20, seed=seed):
        x[start : start + len(rows)] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
        y[start : start + len(rows)] = labels
    return x, y


def knn_majority(xy: np.ndarray, labels: np.ndarray, k: int = 10) -> np.ndarray:
    """Each point's majority class among its ``k`` nearest 2-D neighbours (itself excluded)."""
    from sklearn.neighbors import NearestNeighbors

    idx = NearestNeighbors(n_neighbors=k + 1).fit(xy).kneighbors(xy, return_distance=False)[:, 1:]
    votes = labels[idx]
    n_classes = int(labels.max()) + 1
    counts = np.zeros((len(labels), n_classes), np.int64)
    np.add.at(counts, (np.repeat(np.arange(len(labels)), k), votes.ravel()), 1)
    return counts.argmax(axis=1)


def warm_up(x: np.ndarray) -> None:
    """One small fit and transform first, so that numba's compilation is not in the times."""
    from backend.scoring.projection import project_2d

    project_2d(x[:2_000], fit_sample=1_000, seed=0)


def quality(args: argparse.Namespace) -> dict:
    from sklearn.manifold import trustworthiness

    from backend.scoring.projection import project_2d

    x, y = embeddings(args.quality_n, args.dim, args.seed)
    warm_up(x)
    sub = np.sort(np.random.default_rng(args.seed + 1).choice(len(x), args.subsample, replace=False))
    rows = {}
    full_vote = None
    for fit_sample in [None, *args.fit_samples]:
        name = "full fit" if fit_sample is None else f"fit on {fit_sample:,}"
        print(f"== quality: {name}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        xy = project_2d(x, fit_sample=fit_sample or len(x), seed=args.seed)
        seconds = time.perf_counter() - started
        vote = knn_majority(xy, y)
        full_vote = vote if fit_sample is None else full_vote
        rows[name] = {
            "fit_sample": fit_sample or len(x),
            "seconds": round(seconds, 1),
            "trustworthiness_10nn": round(float(trustworthiness(x[sub], xy[sub], n_neighbors=10, metric="cosine")), 4),
            "knn10_label_accuracy_2d": round(float((vote == y).mean()), 4),
            "knn10_vote_agreement_with_full_fit": round(float((vote == full_vote).mean()), 4),
        }
        print(json.dumps({name: rows[name]}), file=sys.stderr, flush=True)
    return {"n": args.quality_n, "dim": args.dim, "subsample": args.subsample, "runs": rows}


def scale_worker(args: argparse.Namespace) -> None:
    """One projection of ``--n`` points in this (fresh) process; prints a JSON record last."""
    from backend.config import ProjectionSettings
    from backend.scoring.projection import project_2d
    from bench.scale import StageMonitor

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("backend").setLevel(logging.INFO)
    monitor = StageMonitor()
    logging.getLogger().addHandler(monitor)
    x, _ = embeddings(args.n, args.dim, args.seed)
    warm_up(x)
    rss_data = monitor.peak
    fit_sample = args.fit_sample or ProjectionSettings.fit_sample
    started, cpu_before = time.perf_counter(), os.times()
    t0 = monitor.t0
    xy = project_2d(x, fit_sample=fit_sample, seed=args.seed)
    seconds, cpu = time.perf_counter() - started, os.times()
    monitor.close()
    fitted = [e for e in monitor.timeline if "UMAP fitted" in e["message"] and f"of {args.n} points" in e["message"]]
    fit_seconds = round(fitted[0]["t"] - (started - t0), 1) if fitted else None
    print(json.dumps({
        "n": args.n, "dim": args.dim, "fit_sample": fit_sample, "seconds": round(seconds, 1),
        "fit_seconds": fit_seconds, "transform_seconds": round(seconds - fit_seconds, 1) if fit_seconds else None,
        "points_per_second": round(args.n / seconds), "finite": bool(np.isfinite(xy).all()),
        "cpu_seconds": round(cpu.user + cpu.system - cpu_before.user - cpu_before.system, 1),
        "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
        "peak_rss_mb_sampled": round(monitor.peak), "rss_after_data_mb": round(rss_data),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "input_mb": round(x.nbytes / 2**20),
    }))


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--fit-sample", type=int, default=None, help="for the scale run (default: the job's)")
    parser.add_argument("--quality-n", type=int, default=50_000)
    parser.add_argument("--fit-samples", type=int, nargs="*", default=[5_000, 10_000, 20_000])
    parser.add_argument("--subsample", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "umap_scale.json")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        scale_worker(args)
        return None
    load = os.getloadavg()
    result: dict = {"benchmark": "umap_scale", "protocol": __doc__}
    if args.out.exists():  # a part skipped keeps its last result
        result.update({k: v for k, v in json.loads(args.out.read_text()).items() if k in ("quality", "scale")})
    if not args.skip_quality:
        result["quality"] = quality(args)
    if not args.skip_scale:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--n", str(args.n), "--dim", str(args.dim),
               "--seed", str(args.seed)] + (["--fit-sample", str(args.fit_sample)] if args.fit_sample else [])
        print(f"== scale: {args.n:,} x {args.dim}", file=sys.stderr, flush=True)
        done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT, check=True)
        record = json.loads(done.stdout.strip().splitlines()[-1])
        scale = result.get("scale") if isinstance(result.get("scale"), dict) else {}
        scale[f"n{record['n']}_fit_sample_{record['fit_sample']}"] = record  # one entry per setting
        result["scale"] = scale
    result["machine"] = {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                         "load_average_at_start": [round(v, 2) for v in load],
                         "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
                         "note": "shared box (other jobs ran concurrently, under nice 5): times are upper bounds"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result.get(k) for k in ("quality", "scale")}, indent=2))
    return result


if __name__ == "__main__":
    main()
