"""Ingest of an image folder of many small files: one process against a pool of worker processes.

Run: ``nice -n 5 .venv/bin/python bench/ingest_folder.py [--n 100000] [--workers N]``; writes
``bench/results/ingest_folder.json``. Not part of the unit tests.

Protocol
--------
1. ``generate``: ``--n`` images of 32 x 32 px in ``--classes`` class folders under ``--workdir``
   (half PNG, half JPEG; each class a colour with seeded noise and a bar at a random place), kept
   between runs (``--regenerate`` writes them again).
2. ``ingest`` twice, each in a fresh process and a fresh workspace: ``thresher ingest FOLDER
   --workers 1`` (the serial path), then ``--workers N`` (default: this machine's cores). The
   files were just written, so both read them from the page cache. Each run records its wall
   time, files per second, the wall time and peak RSS of each stage of the job (``find images``
   walks the folder; ``read images`` decodes, hashes and measures every file; ``store samples``,
   ``store image stats``), the main process's peak RSS, the largest pool worker's peak RSS
   (``RUSAGE_CHILDREN``), the peak proportional set size of the whole process tree (main +
   workers, shared pages counted once), sampled once a second, and the CPU seconds of the main
   process and of the workers: ``cpu_share`` = CPU seconds / wall seconds is how many cores the
   run got (a box busy with other jobs gives a pool no more than it gives one process).
3. ``outputs_equal``: the two workspaces' ``samples`` (but for the ingest time) and
   ``image_stats`` tables are compared row for row.

The speed-up is the serial run's wall time over the pool's, in the same run. On a shared 2-core
box expect under 2x: the walk and the storing stay serial, and other jobs take cores too (the load
averages are recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def generate(folder: Path, n: int, classes: int, seed: int) -> float:
    """Write ``n`` 32 x 32 images into ``folder/<class>/``; returns the seconds it took."""
    from PIL import Image

    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    colours = rng.integers(30, 225, (classes, 3))
    for c in range(classes):
        (folder / f"class{c:02d}").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        c = i % classes
        img = np.clip(colours[c] + rng.normal(0, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
        row = int(rng.integers(0, 28))
        img[row : row + 4] = 255 - img[row : row + 4]
        ext = "png" if i % 2 else "jpg"
        Image.fromarray(img, "RGB").save(folder / f"class{c:02d}" / f"img{i:06d}.{ext}")
    (folder / ".complete").write_text(str(n))
    return time.perf_counter() - started


def worker(args: argparse.Namespace) -> None:
    """One ingest in this (fresh) process; prints a JSON record on the last stdout line."""
    import logging

    from bench.scale import StageMonitor

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().handlers[0].setLevel(logging.WARNING)
    logging.getLogger("backend").setLevel(logging.INFO)
    monitor = StageMonitor(tree=True)
    logging.getLogger().addHandler(monitor)
    from backend.jobs.ingest_job import ingest
    from backend.storage.workspace import Workspace

    load = os.getloadavg()
    started, cpu_before = time.perf_counter(), os.times()
    result = ingest(Workspace.open(args.workspace, create=True), args.folder, workers=args.workers)
    seconds, cpu = time.perf_counter() - started, os.times()
    monitor.close()
    record = {
        "workers": args.workers,
        "n_ingested": result.n_ingested,
        "n_skipped": result.n_skipped,
        "seconds": round(seconds, 2),
        "files_per_second": round(result.n_ingested / seconds, 1),
        "cpu_seconds_main": round(cpu.user + cpu.system - cpu_before.user - cpu_before.system, 1),
        "cpu_seconds_workers": round(cpu.children_user + cpu.children_system
                                     - cpu_before.children_user - cpu_before.children_system, 1),
        "peak_rss_mb_main": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "peak_rss_mb_largest_worker": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
        "peak_pss_mb_all_processes": round(monitor.tree_peak),
        "stages": monitor.stages,
        "load_average_at_start": [round(v, 2) for v in load],
        "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
    }
    print(json.dumps(record))


def run_ingest(folder: Path, workspace: Path, workers: int) -> dict:
    shutil.rmtree(workspace, ignore_errors=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--folder", str(folder),
           "--workspace", str(workspace), "--workers", str(workers)]
    print(f"== ingest --workers {workers}", file=sys.stderr, flush=True)
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def same_tables(a: Path, b: Path) -> dict[str, bool]:
    import pandas as pd

    from backend.storage.workspace import Workspace

    equal = {}
    for name, drop in (("samples", ["ingested_at"]), ("image_stats", [])):
        frames = [Workspace.open(ws).read(name).drop(columns=drop).sort_values("id").reset_index(drop=True)
                  for ws in (a, b)]
        try:
            pd.testing.assert_frame_equal(*frames)
            equal[name] = True
        except AssertionError:
            equal[name] = False
    return equal


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--workers", type=int, default=None, help="the pool's size (default: the cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/thresher-ingest-folder"))
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ingest_folder.json")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--workspace", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return None
    from backend.ingest.images import default_workers

    workers = args.workers or default_workers()
    folder = args.workdir / f"images-n{args.n}"
    marker = folder / ".complete"
    generate_seconds = None
    if args.regenerate or not marker.exists() or marker.read_text() != str(args.n):
        shutil.rmtree(folder, ignore_errors=True)
        generate_seconds = round(generate(folder, args.n, args.classes, args.seed), 1)
        print(f"== generate: {generate_seconds} s", file=sys.stderr, flush=True)
    serial = run_ingest(folder, args.workdir / "ws-serial", 1)
    pooled = run_ingest(folder, args.workdir / "ws-pool", workers)
    result = {
        "benchmark": "ingest_folder",
        "protocol": __doc__,
        "n_files": args.n,
        "image_size": [32, 32],
        "formats": "half PNG, half JPEG",
        "classes": args.classes,
        "generate_seconds": generate_seconds,
        "serial": serial,
        "pool": pooled,
        "speed_up": round(serial["seconds"] / pooled["seconds"], 2),
        "cpu_share": {name: round((run["cpu_seconds_main"] + run["cpu_seconds_workers"]) / run["seconds"], 2)
                      for name, run in (("serial", serial), ("pool", pooled))},
        "read_images_speed_up": round(serial["stages"]["read images"]["seconds"]
                                      / max(pooled["stages"]["read images"]["seconds"], 1e-9), 2),
        "outputs_equal": same_tables(args.workdir / "ws-serial", args.workdir / "ws-pool"),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "workers": workers,
                    "note": "shared box (other jobs ran concurrently, under nice 5): times are upper bounds"},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("n_files", "speed_up", "read_images_speed_up", "outputs_equal",
                                             "cpu_share")}
                     | {"serial_s": serial["seconds"], "pool_s": pooled["seconds"],
                        "serial_files_per_s": serial["files_per_second"], "pool_files_per_s": pooled["files_per_second"],
                        "serial_peak_rss_mb": serial["peak_rss_mb_main"],
                        "pool_peak_pss_mb_all": pooled["peak_pss_mb_all_processes"]}, indent=2))
    return result


if __name__ == "__main__":
    main()
