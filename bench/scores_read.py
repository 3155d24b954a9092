"""Reading one (run, score) slice of the long ``scores`` table at 1M samples, without and with
the zone-map indexes of ``backend/storage/scalar_index.py``.

Run: ``nice -n 5 .venv/bin/python bench/scores_read.py [--workspace W]``
(``bench/results/scores_read.json``); the default workspace is the 1M one ``bench/scale_app.py``
builds (``bench/scale_app.py --build-only`` makes it). The stored results were measured on a 1M x
32-d workspace with one synthetic score run of the same shape. Not part of the unit tests.

Protocol: the workspace's ``runs``, ``scores``, ``label_issues`` and ``projections`` tables are
copied to a scratch workspace (the source is never written); its score run is copied once more
under a second run id (``--extra-runs``), as a workspace that has scored twice. Then, in one
process, each read is timed 5 times (median) with no index, the indexes are built
(``scalar_index.refresh``, timed), and the same reads are timed again:

- ``read_score``: ``results.read_score`` (Lance ``to_table(filter=run_id AND name)``, id + value);
- ``aligned_score``: ``queries.aligned_score``, the Explore colouring's read (DuckDB over the Lance
  dataset, joined with the projection's 1M ids);
- ``read_label_issues``: one run's rows of ``label_issues`` (filter on run_id).

Every indexed read is checked equal to its unindexed read. ``--alternatives`` also times BITMAP
and BTREE indexes on copies of the table (build time and one slice read).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import lance  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402

from backend.storage import Workspace, queries, results, scalar_index  # noqa: E402
from backend.storage.workspace import sql_string  # noqa: E402

TABLES = ("runs", "scores", "label_issues", "projections")


def median_s(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def scratch_copy(source: Path, scratch: Path, extra_runs: int) -> tuple[Workspace, list[str]]:
    """The tables of ``source`` in a fresh workspace at ``scratch``, no index, plus ``extra_runs``
    copies of its last score run; returns it and its score run ids (the copies first)."""
    shutil.rmtree(scratch, ignore_errors=True)
    (scratch / "lance").mkdir(parents=True)
    shutil.copy(source / "workspace.json", scratch / "workspace.json")
    for name in TABLES:
        shutil.copytree(source / "lance" / f"{name}.lance", scratch / "lance" / f"{name}.lance")
    ws = Workspace.open(scratch)
    for name in ("scores", "label_issues"):
        dataset = ws.dataset(name)
        for index in dataset.describe_indices():
            dataset.drop_index(index.name)
    table = ws.dataset("runs").to_table(columns=["run_id", "kind", "status"]).to_pandas()
    score_runs = table[(table["kind"] == "score") & (table["status"] == "done")]["run_id"].tolist()
    if not score_runs:
        raise SystemExit(f"{source} has no finished score run: run `thresher score -w {source}` first")
    source_run = score_runs[-1]
    copies = []
    for k in range(extra_runs):
        copy_id = f"{source_run[:-6]}{(int(source_run[-6:], 16) + k + 1) % 0x1000000:06x}"  # a valid run id
        for name in ("scores", "label_issues"):
            batches = ws.dataset(name).to_batches(filter=f"run_id = {sql_string(source_run)}")
            schema = ws.dataset(name).schema

            def renamed(batches=batches, schema=schema, copy_id=copy_id):
                for batch in batches:
                    column = pa.array(np.full(batch.num_rows, copy_id, dtype=object), pa.string())
                    yield batch.set_column(batch.schema.get_field_index("run_id"), "run_id", column)

            lance.write_dataset(pa.RecordBatchReader.from_batches(schema, renamed()),
                                str(ws.lance_dir / f"{name}.lance"), mode="append")
        run_row = ws.dataset("runs").to_table(filter=f"run_id = {sql_string(source_run)}")
        ws.table("runs").add(run_row.set_column(run_row.schema.get_field_index("run_id"), "run_id",
                                                pa.array([copy_id], pa.string())))
        copies.append(copy_id)
    return ws, [*copies, source_run]


def timed_reads(ws: Workspace, run_ids: list[str], names: list[str], map_ids: pa.Table | None,
                repeats: int) -> tuple[dict[str, float], dict[str, pa.Table]]:
    times, tables = {}, {}
    engine = queries.QueryEngine(ws)
    for run_id in run_ids:
        for name in names:
            key = f"{run_id}/{name}"
            times[f"read_score {key}"], tables[f"read_score {key}"] = median_s(
                lambda r=run_id, n=name: results.read_score(ws, r, n), repeats)
            if map_ids is not None:
                times[f"aligned_score {key}"], tables[f"aligned_score {key}"] = median_s(
                    lambda r=run_id, n=name: queries.aligned_score(engine, r, n, map_ids), repeats)
        times[f"read_label_issues {run_id}"], frame = median_s(
            lambda r=run_id: results.read_label_issues(ws, r), repeats)
        tables[f"read_label_issues {run_id}"] = pa.Table.from_pandas(frame, preserve_index=False)
    engine.close()
    return times, tables


def alternatives(ws: Workspace, run_id: str, name: str, scratch: Path, repeats: int) -> dict[str, dict]:
    """The other scalar index types on run_id and name, each built on its own copy of ``scores``:
    build time and the median ``to_table(filter=run_id AND name)`` of one slice."""
    out = {}
    where = f"run_id = {sql_string(run_id)} AND name = {sql_string(name)}"
    for kind in ("BITMAP", "BTREE"):
        path = scratch / f"scores_{kind.lower()}.lance"
        shutil.rmtree(path, ignore_errors=True)
        shutil.copytree(ws.lance_dir / "scores.lance", path)
        dataset = lance.dataset(str(path))
        for index in dataset.describe_indices():
            dataset.drop_index(index.name)
        start = time.perf_counter()
        for column in ("run_id", "name"):
            lance.dataset(str(path)).create_scalar_index(column, index_type=kind, name=f"{column}_{kind.lower()}")
        build_s = time.perf_counter() - start
        read_s, _ = median_s(lambda p=path: lance.dataset(str(p)).to_table(columns=["id", "value"], filter=where),
                             repeats)
        out[kind] = {"build_s": round(build_s, 2), "read_score_s": round(read_s, 4)}
        shutil.rmtree(path)
    return out


def same(left: pa.Table, right: pa.Table) -> bool:
    key = "pos" if "pos" in left.column_names else "id"
    return left.sort_by(key).equals(right.sort_by(key))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=Path("/tmp/thresher-scale-app/large"))
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/scoresindex/bench-ws"))
    parser.add_argument("--extra-runs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--alternatives", action="store_true",
                        help="also time BITMAP and BTREE indexes (each on a copy of the scores table)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scores_read.json")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    ws, run_ids = scratch_copy(args.workspace.resolve(), args.scratch, args.extra_runs)
    copy_s = time.perf_counter() - start
    scores = ws.dataset("scores")
    all_names = pc.unique(scores.to_table(columns=["name"], filter=f"run_id = {sql_string(run_ids[-1])}")["name"])
    names = [all_names[0].as_py(), all_names[-1].as_py()]  # the first and the last score written
    projections = ws.dataset("projections")
    project_run = projections.to_table(columns=["run_id"], limit=1)["run_id"][0].as_py() if projections.count_rows() else None
    map_ids = None
    if project_run is not None:
        ids = projections.to_table(columns=["id"], filter=f"run_id = {sql_string(project_run)}")["id"]
        map_ids = pa.table({"pos": pa.array(np.arange(len(ids), dtype=np.int64)), "id": ids})

    before, before_tables = timed_reads(ws, run_ids, names, map_ids, args.repeats)
    build = {}
    for name in scalar_index.INDEXES:
        start = time.perf_counter()
        built = scalar_index.refresh(ws, name)
        build[name] = {"indexes": built, "seconds": round(time.perf_counter() - start, 3),
                       "bytes": sum(i.total_size_bytes or 0 for i in ws.dataset(name).describe_indices())}
    after, after_tables = timed_reads(ws, run_ids, names, map_ids, args.repeats)
    mismatched = [key for key in before_tables if not same(before_tables[key], after_tables[key])]
    if mismatched:
        raise SystemExit(f"indexed reads differ from unindexed reads: {mismatched}")

    reads = {key: {"no_index_s": round(before[key], 4), "zonemap_s": round(after[key], 4),
                   "speedup": round(before[key] / after[key], 1)} for key in before}
    result = {
        "what": f"median of {args.repeats} reads, same process, no index vs zone maps "
                "(backend/storage/scalar_index.py)",
        "source_workspace": str(args.workspace),
        "score_rows": scores.count_rows(),
        "label_issue_rows": ws.dataset("label_issues").count_rows(),
        "score_runs": run_ids,
        "map_points": None if map_ids is None else map_ids.num_rows,
        "rows_per_slice": before_tables[f"read_score {run_ids[-1]}/{names[0]}"].num_rows,
        "index_min_rows": scalar_index.MIN_ROWS,
        "index_build": build,
        "reads": reads,
        "identical": True,
        "alternatives": alternatives(ws, run_ids[-1], names[0], args.scratch, args.repeats) if args.alternatives
        else "not run (--alternatives)",
        "setup_s": round(copy_s, 1),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_avg_1m": os.getloadavg()[0]},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
