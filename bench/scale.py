"""Scale check: what a user runs on 1,000,000 x 512 precomputed embeddings, on CPU, no N x N matrix.

Run: ``nice -n 10 .venv/bin/python bench/scale.py [--n 1000000] [--out PATH] [--stages ingest,score]``;
``--n 50000`` is the quick size. Writes ``bench/results/scale.json``; a run of other stages than
``ingest,score`` writes ``bench/results/scale_<stages>.json`` (e.g. ``scale_ingest.json``), so
that the full run's numbers stay beside it. Not part of the unit tests.

Protocol
--------
1. ``generate``: synthetic embeddings written to a Parquet file (``id``, ``label``,
   ``embedding``) one row group of 100k rows at a time, never all in memory. Rows: ``--clusters``
   random unit centres, each row a centre plus a random low-rank (64-d) offset plus isotropic
   noise, renormalised (top-1 cosine similarity ~0.65, like CLIP image embeddings), then scaled
   by a norm drawn from 10 * lognormal(0, 0.1) (stored embeddings are not unit vectors).
   ``--classes`` classes, class = cluster id mod classes (each class is several modes, like a
   superclass). ``--noise`` symmetric label noise: that share of rows gets a uniformly random
   *different* class; the truth is kept beside the file to score the verdict.
   Default 100 classes: the range of curated image sets at this size (CIFAR-100,
   ImageNet-100, product / species subsets); the probes' recorded logits grow as
   epochs x N x C (3.2 GB of float32 at 8 epochs, 1M rows, 100 classes), so C is the knob that
   matters most for memory after N.
2. ``ingest``: ``thresher ingest --embeddings FILE.parquet`` (``backend.jobs.ingest_job.ingest``)
   in a fresh process, measured as the score job is (below): wall time and peak RSS of each of
   its stages (read the file, store embeddings, store samples) and of the whole job.
3. ``score``: ``thresher score`` (``backend.jobs.score_job.score``) with its default scorers, in a
   fresh process: probes, label-noise verdict, every default pruning score, neural-collapse
   metrics, results written to the workspace's Lance tables. The job marks its stages in its log
   (``extra={"stage": ...}``); a sampler thread reads the process RSS every 0.2 s, so every stage
   gets its wall time and its own peak RSS. The headline ``total_seconds`` is the job end to end.
   ``--runners local ray`` scores the same workspace a second time with ``thresher score --ray``
   (a local Ray instance over this machine's cores), in a fresh process; its memory is the peak
   proportional set size of that process and all its descendants (Ray's raylet, object store and
   workers; shared memory counted once), sampled once a second, and the two runs' stored outputs
   are compared for equality (``ray_vs_local``).
   ``--evaluate`` then prunes half the samples with the recommended default (``thresher prune
   --ratio 0.5``) and runs ``thresher evaluate`` on that subset, in a fresh process
   (``prune_and_evaluate``). ``--resume`` reuses what an interrupted run left in ``--workdir``.
   ``project`` (in ``--stages``): ``thresher project`` (UMAP with the job's default
   ``fit_sample``: fit on a seeded sample, transform the rest in batches) in a fresh process,
   measured the same way.
4. ``evaluate`` (not timed as part of the job): precision / recall / F1 of the stored verdict and
   of each detector against the injected noise; kNN quality: the job's neighbour search
   (``knn_search`` with the same arguments, so the same IVF index) for 1,000 random rows against
   exact search.

Times on a shared 2-core box are upper bounds: the load averages are recorded.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CHUNK_ROWS = 100_000
DEFAULT_OUT = ROOT / "bench" / "results" / "scale.json"
PAGE = os.sysconf("SC_PAGE_SIZE")


# -- data ------------------------------------------------------------------------------------


def clustered_embeddings(
    n: int,
    *,
    dim: int = 512,
    n_clusters: int = 1000,
    n_classes: int = 100,
    spread: float = 1.0,
    intrinsic: int = 64,
    seed: int = 0,
    chunk: int = CHUNK_ROWS,
):
    """Yield (start, (rows, dim) float32 unnormalised embeddings, (rows,) int64 true labels)
    chunk by chunk (true label = cluster id mod n_classes); see the module docstring."""
    rng, centers, basis, cluster = _cluster_draws(n, dim=dim, n_clusters=n_clusters, intrinsic=intrinsic, seed=seed)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        offset = rng.standard_normal((stop - start, intrinsic)).astype(np.float32) @ basis
        offset += 0.2 * rng.standard_normal((stop - start, dim)).astype(np.float32) / np.sqrt(dim)
        rows = centers[cluster[start:stop]] + spread * offset
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        rows *= (10.0 * rng.lognormal(0.0, 0.1, stop - start)).astype(np.float32)[:, None]
        yield start, rows, (cluster[start:stop] % n_classes).astype(np.int64)


def _cluster_draws(n: int, *, dim: int, n_clusters: int, intrinsic: int, seed: int):
    """The generator's first draws: (rng, unit centres, offset basis, each row's cluster)."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_clusters, dim)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    basis = rng.standard_normal((intrinsic, dim)).astype(np.float32) / np.sqrt(dim * intrinsic)
    return rng, centers, basis, rng.integers(0, n_clusters, n)


def _noise_draws(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """Which rows get a wrong label, and the class shift each row would get."""
    rng = np.random.default_rng(args.seed + 1)
    noisy = np.zeros(args.n, bool)
    noisy[rng.choice(args.n, int(round(args.noise * args.n)), replace=False)] = True
    return noisy, rng.integers(1, args.classes, args.n)


def synthetic_truth(args: argparse.Namespace) -> dict:
    """What :func:`write_parquet` returns, without generating the rows (for ``--resume``)."""
    cluster = _cluster_draws(args.n, dim=args.dim, n_clusters=args.clusters, intrinsic=64, seed=args.seed)[3]
    return {"true": (cluster % args.classes).astype(np.int64), "noisy": _noise_draws(args)[0]}


def write_parquet(path: Path, args: argparse.Namespace) -> dict:
    """Write the synthetic set to ``path``; return the truth (true / given labels) as arrays."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    noisy, shift = _noise_draws(args)
    true_all = np.empty(args.n, np.int64)
    schema = pa.schema([("id", pa.string()), ("label", pa.string()),
                        ("embedding", pa.list_(pa.float32()))])  # fmt: skip
    with pq.ParquetWriter(path, schema) as writer:
        for start, rows, true in clustered_embeddings(
            args.n, dim=args.dim, n_clusters=args.clusters, n_classes=args.classes,
            spread=args.spread, seed=args.seed,
        ):  # fmt: skip
            stop = start + len(rows)
            true_all[start:stop] = true
            given = np.where(noisy[start:stop], (true + shift[start:stop]) % args.classes, true)
            ids = [f"s{i:07d}" for i in range(start, stop)]
            flat = pa.array(rows.reshape(-1))
            emb = pa.ListArray.from_arrays(pa.array(np.arange(0, rows.size + 1, args.dim, dtype=np.int32)), flat)
            writer.write_table(pa.table({"id": ids, "label": [str(v) for v in given], "embedding": emb},
                                        schema=schema))  # fmt: skip
    return {"true": true_all, "noisy": noisy}


# -- measuring a job in this process ---------------------------------------------------------


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (Ray's raylet, object store and workers when this
    process started Ray)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def tree_pss_mb(pid: int | None = None) -> float:
    """Proportional set size of ``pid`` (default this process) and its descendants, MB: shared
    memory (Ray's object store, which every worker maps) is counted once, not per process."""
    total_kb = 0
    for member in descendants(pid or os.getpid()):
        try:
            with open(f"/proc/{member}/smaps_rollup") as f:
                total_kb += next(int(line.split()[1]) for line in f if line.startswith("Pss:"))
        except (OSError, StopIteration):
            continue
    return total_kb / 1024


class StageMonitor(logging.Handler):
    """Turns the jobs' stage marks (log records with ``extra={"stage": name, "event": ...}``)
    into per-stage wall time and peak RSS; a thread samples RSS every ``interval`` seconds."""

    def __init__(self, interval: float = 0.2, *, tree: bool = False) -> None:
        super().__init__(level=logging.INFO)
        self.tree = tree  # also sample the process tree's PSS (once a second: a /proc scan)
        self.tree_peak = tree_pss_mb() if tree else 0.0
        self.stages: dict[str, dict] = {}
        self.open: dict[str, tuple[float, float]] = {}  # name -> (start time, peak so far)
        self.timeline: list[dict] = []
        self.peak = rss_mb()
        self.t0 = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(interval,), daemon=True)
        self._thread.start()

    def _sample(self, interval: float) -> None:
        ticks = 0
        while not self._stop.wait(interval):
            self._bump(rss_mb())
            ticks += 1
            if self.tree and ticks % max(1, round(1.0 / interval)) == 0:
                self.tree_peak = max(self.tree_peak, tree_pss_mb())

    def _bump(self, mb: float) -> None:
        self.peak = max(self.peak, mb)
        for name, (start, peak) in list(self.open.items()):
            self.open[name] = (start, max(peak, mb))

    def emit(self, record: logging.LogRecord) -> None:
        now, mb = time.perf_counter(), rss_mb()
        self._bump(mb)
        self.timeline.append({"t": round(now - self.t0, 1), "rss_mb": round(mb),
                              "logger": record.name, "message": record.getMessage()[:200]})  # fmt: skip
        print(f"[{now - self.t0:7.1f}s {mb:7.0f} MB] {record.getMessage()[:160]}", file=sys.stderr, flush=True)
        stage, event = getattr(record, "stage", None), getattr(record, "event", None)
        if stage is None:
            return
        if event == "start":
            self.open[stage] = (now, mb)
        elif event == "done" and stage in self.open:
            start, peak = self.open.pop(stage)
            self.stages[stage] = {"seconds": round(now - start, 1), "peak_rss_mb": round(peak),
                                  "rss_after_mb": round(mb), "load_1m": round(os.getloadavg()[0], 2)}  # fmt: skip

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        super().close()


def worker(args: argparse.Namespace) -> None:
    """One job in this (fresh) process; prints a JSON record on the last stdout line."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().handlers[0].setLevel(logging.WARNING)  # the monitor prints INFO lines
    logging.getLogger("backend").setLevel(logging.INFO)
    monitor = StageMonitor(tree=args.runner == "ray")
    logging.getLogger().addHandler(monitor)
    from backend.storage.workspace import Workspace

    load = os.getloadavg()
    started = time.perf_counter()
    rss_before = rss_mb()
    if args.worker == "ingest":
        from backend.jobs.ingest_job import ingest

        ws = Workspace.open(args.workspace, create=True)
        result = ingest(ws, args.parquet, embeddings=True)
        extra = {"n_ingested": result.n_ingested, "embedding_key": result.embedding_key}
    elif args.worker == "score":
        from backend.jobs.runner import LocalRunner, RayRunner
        from backend.jobs.score_job import score

        ws = Workspace.open(args.workspace)
        with RayRunner() if args.runner == "ray" else LocalRunner() as runner:
            result = score(ws, runner=runner)
            described = runner.describe()
        extra = {"run_id": result.run_id, "n_label_issues": result.n_label_issues, "runner": described,
                 "scorers": result.scorers, "job_seconds": round(result.seconds, 1)}  # fmt: skip
        if monitor.tree:  # Ray's processes are this one's children: the job's memory is the tree's
            extra["peak_tree_pss_mb"] = round(monitor.tree_peak)
    elif args.worker == "project":
        from backend.config import ProjectionSettings
        from backend.jobs.project_job import project

        settings = ProjectionSettings()
        result = project(Workspace.open(args.workspace), settings)
        extra = {"run_id": result.run_id, "n_points": result.n_points, "method": settings.method,
                 "fit_sample": settings.fit_sample, "job_seconds": round(result.seconds, 1)}
    else:  # evaluate
        from backend.jobs.evaluate_job import COMPARISONS
        from backend.jobs.evaluate_job import evaluate as evaluate_subset
        from backend.jobs.prune_job import prune

        ws = Workspace.open(args.workspace)
        pruned = prune(ws, name="half", ratio=0.5, overwrite=True)
        prune_seconds = time.perf_counter() - started
        result = evaluate_subset(ws, subset="half")
        extra = {"prune_run": pruned.run_id, "prune_seconds": round(prune_seconds, 1),
                 "evaluate_run": result.run_id, "probe": result.summary["probe"],
                 "n_kept": result.summary["n_kept"], "accuracy": result.summary["accuracy"],
                 "comparisons": {key: result.summary[key] for key in COMPARISONS}}
    seconds = time.perf_counter() - started
    monitor.close()
    record = {
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "rss_before_job_mb": round(rss_before),
        "load_average_at_start": [round(v, 2) for v in load],
        "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
        "stages": monitor.stages,
        "timeline": monitor.timeline,
        **extra,
    }
    print(json.dumps(record))


def run_worker(kind: str, args: argparse.Namespace, workspace: Path, parquet: Path, runner: str = "local") -> dict:
    out_path = workspace.parent / f"{kind}-{runner}.json"
    if args.resume and out_path.exists() and out_path.read_text().strip():
        print(f"== {kind} ({runner}): reusing {out_path}", file=sys.stderr, flush=True)
        return json.loads(out_path.read_text().strip().splitlines()[-1])
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--workspace", str(workspace),
           "--parquet", str(parquet), "--runner", runner]  # fmt: skip
    print(f"== {kind}: {' '.join(cmd)}", file=sys.stderr, flush=True)
    with open(out_path, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, text=True, cwd=ROOT)
        while proc.poll() is None:  # a guard for the shared box: stop a job that outgrows it
            time.sleep(1.0)
            try:
                if runner == "ray":  # the job's Ray processes are the child's descendants
                    child_gb = tree_pss_mb(proc.pid) / 1024
                else:
                    with open(f"/proc/{proc.pid}/statm") as f:
                        child_gb = int(f.read().split()[1]) * PAGE / 2**30
            except OSError:
                continue
            if child_gb > args.max_rss_gb:
                proc.kill()
                raise SystemExit(f"{kind} ({runner}) stopped at {child_gb:.1f} GB (--max-rss-gb {args.max_rss_gb})")
    if proc.returncode != 0:
        raise SystemExit(f"{kind} failed with exit code {proc.returncode}")
    return json.loads(out_path.read_text().strip().splitlines()[-1])


# -- evaluation ------------------------------------------------------------------------------


def f1_score(flags: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    tp = int((flags & truth).sum())
    precision = tp / max(int(flags.sum()), 1)
    recall = tp / max(int(truth.sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "n_flagged": int(flags.sum())}  # fmt: skip


def knn_quality(unit: np.ndarray, *, k: int, n_queries: int, seed: int) -> dict:
    """The job's kNN (same call as the label-noise stage, so the same IVF cells) for
    ``n_queries`` random rows, against exact search."""
    from backend.scoring.knn import knn_search

    rows = np.sort(np.random.default_rng(seed).choice(unit.shape[0], n_queries, replace=False))
    started = time.perf_counter()
    idx, sims = knn_search(unit, k, queries=rows, method="auto", seed=0)
    exact_idx, exact_sims = knn_search(unit, k, queries=rows, method="exact")
    recall = np.mean([len(set(a) & set(b)) / k for a, b in zip(idx, exact_idx, strict=True)])
    return {"recall_at_k": round(float(recall), 4),
            "similarity_ratio": round(float(sims.mean() / exact_sims.mean()), 4),
            "k": k, "n_queries": n_queries, "method": "auto (IVF above 100k rows)",
            "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip


def same_outputs(workspace, run_a: str, run_b: str) -> dict[str, bool]:
    """Whether two score runs stored the same scores, verdicts and collapse metrics (run ids aside)."""
    import pandas as pd

    from backend.storage import Workspace, results

    ws = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)
    equal = {}
    for name, read in (("scores", results.read_scores), ("label_issues", results.read_label_issues),
                       ("collapse", results.read_collapse)):
        a = read(ws, run_a).drop(columns=["run_id"], errors="ignore")
        b = read(ws, run_b).drop(columns=["run_id"], errors="ignore")
        key = ["id"] if "id" in a.columns else list(a.columns[:4])
        try:
            pd.testing.assert_frame_equal(a.sort_values(key).reset_index(drop=True),
                                          b.sort_values(key).reset_index(drop=True))
            equal[name] = True
        except AssertionError:
            equal[name] = False
    return equal


def evaluate(workspace: Path, run_id: str, truth: dict, args: argparse.Namespace) -> dict:
    from backend.scoring.label_noise.verdict import DETECTORS
    from backend.storage import results
    from backend.storage.workspace import Workspace

    ws = Workspace.open(workspace)
    verdict = results.read_label_issues(ws, run_id)
    pos = verdict["id"].str.slice(1).astype(np.int64).to_numpy()
    noisy = truth["noisy"][pos]
    metrics = {"verdict": f1_score(verdict["is_label_issue"].to_numpy(bool), noisy)}
    detectors = verdict["detectors"].fillna("").str.split(",")
    for name in DETECTORS:
        flags = detectors.map(lambda names, name=name: name in names).to_numpy(bool)
        if flags.any():
            metrics[name] = f1_score(flags, noisy)
    ids, unit, _ = ws.load_embeddings(ws.embedding_keys()[0])
    quality = knn_quality(unit, k=10, n_queries=1000, seed=args.seed)
    return {"metrics": metrics, "knn_quality_vs_exact": quality}


# -- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--spread", type=float, default=1.0, help="cluster spread (higher = harder)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/thresher-scale"))
    parser.add_argument("--max-rss-gb", type=float, default=18.0,
                        help="kill a job whose RSS passes this (the box is shared)")
    parser.add_argument("--keep", action="store_true", help="keep the Parquet file and workspace")
    parser.add_argument("--resume", action="store_true",
                        help="reuse what an interrupted run with the same arguments left in --workdir "
                             "(the Parquet file, the workspace and each finished job's record)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--runners", nargs="+", choices=("local", "ray"), default=["local"],
                        help="score the same workspace with each runner, each in a fresh process "
                             "(ray: thresher score --ray on this machine)")
    parser.add_argument("--evaluate", action="store_true",
                        help="then prune half the samples with the recommended default and run "
                             "thresher evaluate on that subset, in a fresh process")
    parser.add_argument("--stages", default="ingest,score", type=lambda text: [t.strip() for t in text.split(",") if t.strip()],
                        help="comma-separated steps to run after generating the data, of ingest, score, project "
                             "(default %(default)s; score and project need ingest, here or in a --resume run)")
    parser.add_argument("--worker", choices=("ingest", "score", "project", "evaluate"), help=argparse.SUPPRESS)
    parser.add_argument("--runner", choices=("local", "ray"), default="local", help=argparse.SUPPRESS)
    parser.add_argument("--workspace", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--parquet", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return None

    run_dir = args.workdir / f"n{args.n}"
    parquet, workspace = run_dir / "embeddings.parquet", run_dir / "workspace"
    resuming = args.resume and parquet.exists()
    if not resuming:
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
    load_start = os.getloadavg()
    started = time.perf_counter()
    truth = synthetic_truth(args) if resuming else write_parquet(parquet, args)
    generate_seconds = time.perf_counter() - started
    print(f"== generate: {generate_seconds:.1f} s, {parquet.stat().st_size / 2**20:.0f} MB", file=sys.stderr)
    unknown = sorted(set(args.stages) - {"ingest", "score", "project"})
    if unknown:
        raise SystemExit(f"--stages: unknown {', '.join(unknown)}; choose from ingest, score, project")
    if "ingest" not in args.stages and not (resuming and workspace.exists()):
        raise SystemExit("--stages without ingest needs the workspace of an earlier run: add --resume (and --keep then)")
    ingest_record = run_worker("ingest", args, workspace, parquet) if "ingest" in args.stages else None
    project_record = run_worker("project", args, workspace, parquet) if "project" in args.stages else None
    headline: dict = {}
    if ingest_record:
        headline |= {"ingest_job_seconds": ingest_record["seconds"],
                     "ingest_job_peak_rss_mb": ingest_record["peak_rss_mb"],
                     "ingest_stages_peak_rss_mb": {k: v["peak_rss_mb"] for k, v in ingest_record["stages"].items()}}
    if project_record:
        headline |= {"project_job_seconds": project_record["seconds"],
                     "project_job_peak_rss_mb": project_record["peak_rss_mb"]}
    evaluation: dict = {}
    score_records: dict = {}
    evaluate_record = None
    if "score" in args.stages:
        score_records = {runner: run_worker("score", args, workspace, parquet, runner) for runner in args.runners}
        score_record = score_records[args.runners[0]]
        evaluation = evaluate(workspace, score_record["run_id"], truth, args)
        evaluate_record = run_worker("evaluate", args, workspace, parquet) if args.evaluate else None
        headline |= {"score_job_seconds": score_record["seconds"], "score_job_peak_rss_mb": score_record["peak_rss_mb"],
                     "verdict_f1": evaluation["metrics"]["verdict"]["f1"]}
        if ingest_record:
            headline["total_seconds_ingest_plus_score"] = round(ingest_record["seconds"] + score_record["seconds"], 1)
    if "local" in score_records and "ray" in score_records:
        on_ray = score_records["ray"]
        evaluation["ray_vs_local"] = {
            "seconds": {"local": score_records["local"]["seconds"], "ray": on_ray["seconds"]},
            "memory_mb": {"local_peak_rss": score_records["local"]["peak_rss_mb"],
                          "ray_driver_peak_rss": on_ray["peak_rss_mb"],
                          "ray_job_peak_pss_all_processes": on_ray["peak_tree_pss_mb"]},
            "outputs_equal": same_outputs(workspace, score_records["local"]["run_id"], on_ray["run_id"]),
        }

    result = {
        "benchmark": "scale",
        "protocol": __doc__,
        "stages": args.stages,
        "n": args.n,
        "dim": args.dim,
        "classes": args.classes,
        "clusters": args.clusters,
        "label_noise": args.noise,
        "spread": args.spread,
        "seed": args.seed,
        "headline": headline,
        **evaluation,
        "generate": {"seconds": round(generate_seconds, 1), "parquet_mb": round(parquet.stat().st_size / 2**20),
                     "resumed": resuming},
        **({"ingest": ingest_record} if ingest_record else {}),
        **({"score": score_records[args.runners[0]]} if score_records else {}),
        **({"project": project_record} if project_record else {}),
        **({"score_on_ray": score_records["ray"]} if "ray" in score_records and args.runners[0] != "ray" else {}),
        **({"prune_and_evaluate": evaluate_record} if evaluate_record else {}),
        "embeddings_mb": round(args.n * args.dim * 4 / 2**20),
        "nxn_float32_would_need_gb": round(4 * args.n * args.n / 2**30, 1),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "load_average_at_start": [round(v, 2) for v in load_start],
            "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
            "note": "shared box (another agent's benchmarks ran concurrently, jobs under nice 10): "
                    "times are upper bounds",
        },
    }
    if args.out == DEFAULT_OUT and args.stages != ["ingest", "score"]:
        args.out = DEFAULT_OUT.with_name(f"scale_{'_'.join(args.stages)}.json")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"n": args.n, **result["headline"], "metrics": evaluation.get("metrics"),
                      "ray_vs_local": evaluation.get("ray_vs_local"),
                      "knn": evaluation.get("knn_quality_vs_exact")}, indent=2))  # fmt: skip
    if not args.keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    return result


if __name__ == "__main__":
    main()
