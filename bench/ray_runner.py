"""Ray runner: the score job in this process vs on Ray workers, same data, same process, same numbers.

Run: ``.venv/bin/python bench/ray_runner.py [--n 20000] [--out PATH]``; writes
``bench/results/ray_runner.json``. Not part of the unit tests (they check that the numbers are
equal; this measures the time).

Protocol
--------
1. Synthetic embeddings from ``bench/scale.py`` (clustered, unnormalised, 10 % symmetric label
   noise), ``--n`` rows (default 20,000: below the score job's ``LARGE_N``, so the default probe
   recipe runs: MLP, 3 seeds x 5 folds, 30 epochs), ``--dim`` 256, ``--classes`` 20, ingested
   once into a temporary workspace.
2. ``score`` with the local runner, then with a :class:`backend.jobs.runner.RayRunner` on a
   local Ray instance over this machine's cores (``thresher score --ray``), in this process,
   one after the other; each job's stages timed from its log marks (``bench/scale.py``'s
   ``StageMonitor``). Ray's start-up is timed apart.
3. The two runs' stored scores, verdicts and collapse metrics are compared for equality.

The local runner trains one probe at a time with one intra-op thread (for bit-identical
results, ``probes.py``), so on a machine with C cores Ray can run up to C probes at once. The
speed-up is bounded by the stages that do not train probes (kNN, geometry scores), which stay
in the calling process. Times on a shared box are upper bounds: the load averages are recorded.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from scale import StageMonitor, same_outputs, write_parquet  # noqa: E402

from backend.jobs.ingest_job import ingest  # noqa: E402
from backend.jobs.runner import LocalRunner, RayRunner  # noqa: E402
from backend.jobs.score_job import score  # noqa: E402
from backend.storage import Workspace  # noqa: E402

#: The stages that train probes (the runner's tasks) and the job as a whole.
PROBE_STAGES = ("probes", "label noise")


def timed_score(ws: Workspace, runner) -> tuple[str, dict]:
    monitor = StageMonitor()
    logging.getLogger("backend").addHandler(monitor)
    started = time.perf_counter()
    try:
        result = score(ws, runner=runner, show_progress=True)
    finally:
        logging.getLogger("backend").removeHandler(monitor)
        monitor.close()
    seconds = time.perf_counter() - started
    return result.run_id, {"seconds": round(seconds, 1), "load_average": [round(v, 2) for v in os.getloadavg()],
                           "stages": {name: stage["seconds"] for name, stage in monitor.stages.items()}}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--clusters", type=int, default=200)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--spread", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ray_runner.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("backend").setLevel(logging.INFO)
    logging.getLogger("backend").propagate = False  # the StageMonitor prints the job's log once

    with tempfile.TemporaryDirectory(prefix="thresher-ray-bench-") as tmp:
        parquet = Path(tmp) / "embeddings.parquet"
        write_parquet(parquet, args)
        ws = Workspace.open(Path(tmp) / "ws", create=True)
        ingest(ws, parquet, embeddings=True)
        local_run, local = timed_score(ws, LocalRunner())
        started = time.perf_counter()
        with RayRunner() as runner:
            ray_start = time.perf_counter() - started
            described = runner.describe()
            ray_run, on_ray = timed_score(ws, runner)
        equal = same_outputs(ws, local_run, ray_run)

    speedup = {name: round(local["stages"][name] / on_ray["stages"][name], 2)
               for name in PROBE_STAGES if name in local["stages"] and name in on_ray["stages"]}
    speedup["job"] = round(local["seconds"] / on_ray["seconds"], 2)
    record = {
        "benchmark": "ray_runner",
        "protocol": __doc__,
        "data": {"n": args.n, "dim": args.dim, "classes": args.classes, "clusters": args.clusters,
                 "label_noise": args.noise, "seed": args.seed},
        "ray": {**described, "start_seconds": round(ray_start, 1)},
        "local": local,
        "on_ray": on_ray,
        "speedup_local_over_ray": speedup,
        "outputs_equal": equal,
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({"speedup": speedup, "outputs_equal": equal, "local_s": local["seconds"],
                      "ray_s": on_ray["seconds"], "ray_start_s": record["ray"]["start_seconds"]}, indent=2))
    return record


if __name__ == "__main__":
    main()
