"""Where exact vector search gets slow: LanceDB top-10 cosine search over N x D stored vectors,
exact (a full scan) against an IVF_FLAT index, the way ``backend.storage.vector_index`` searches.

    nice -n 5 .venv/bin/python bench/vector_search.py [--sizes 100000x32 300000x32 ...]

For each size: clustered unit vectors (``bench/scale.py``'s generator: 1,000 clusters, low-rank
offsets) written to a Lance table; ``--queries`` searches for stored rows, exact (no index), then
an IVF_FLAT index built as :func:`backend.storage.vector_index.ensure_index` builds it (sqrt(N)
partitions, cosine) and the same searches with :data:`~backend.storage.vector_index.NPROBES`
probes: median latency, queries per second and recall@10 against the exact answer. Writes
``bench/results/vector_search.json``. Times on a shared 2-core box are upper bounds; the load
averages are recorded.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "bench" / "results" / "vector_search.json"
DEFAULT_SIZES = ("100000x32", "300000x32", "1000000x32", "100000x512", "300000x512", "1000000x512")


def vectors(n: int, dim: int, seed: int = 0):
    """(ids, unit float32 rows) in chunks of 100k."""
    from bench.scale import clustered_embeddings

    for start, rows, _ in clustered_embeddings(n, dim=dim, n_clusters=1000, n_classes=100, seed=seed):
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        yield [f"s{i:07d}" for i in range(start, start + len(rows))], rows


def write_table(db, name: str, n: int, dim: int):
    import pyarrow as pa

    schema = pa.schema([("id", pa.string()), ("embedding", pa.list_(pa.float32(), dim))])
    table = None
    queries = []
    for ids, rows in vectors(n, dim):
        batch = pa.table({"id": ids, "embedding": pa.FixedSizeListArray.from_arrays(pa.array(rows.reshape(-1)), dim)},
                         schema=schema)
        if table is None:
            table = db.create_table(name, batch)
        else:
            table.add(batch)
        queries.append(rows[:5].copy())
    return table, np.concatenate(queries)


def search(table, query: np.ndarray, k: int, nprobes: int) -> list[str]:
    found = (table.search(query, vector_column_name="embedding").distance_type("cosine").nprobes(nprobes)
             .select(["id", "_distance"]).limit(k).to_arrow())
    return found.column("id").to_pylist()


def timed(table, queries: np.ndarray, k: int, nprobes: int) -> tuple[list[float], list[list[str]]]:
    search(table, queries[0], k, nprobes)  # warm
    seconds, answers = [], []
    for query in queries:
        started = time.perf_counter()
        answers.append(search(table, query, k, nprobes))
        seconds.append(time.perf_counter() - started)
    return seconds, answers


def measure(n: int, dim: int, *, n_queries: int, k: int, workdir: Path, index: bool) -> dict:
    import lancedb
    from lancedb.index import IvfFlat

    from backend.storage.vector_index import NPROBES

    db = lancedb.connect(str(workdir / f"db-{n}x{dim}"))
    started = time.perf_counter()
    table, pool = write_table(db, "vectors", n, dim)
    write_s = time.perf_counter() - started
    queries = pool[np.random.default_rng(1).choice(len(pool), min(n_queries, len(pool)), replace=False)]
    exact_s, exact = timed(table, queries, k, NPROBES)
    record = {"n": n, "dim": dim, "values_millions": n * dim / 1e6, "write_s": round(write_s, 1),
              "exact_median_ms": round(1000 * statistics.median(exact_s), 1),
              "exact_queries_per_s": round(1 / statistics.median(exact_s), 1)}
    if index:
        started = time.perf_counter()
        table.create_index("embedding", config=IvfFlat(distance_type="cosine", num_partitions=max(1, int(math.sqrt(n)))))
        record["index_build_s"] = round(time.perf_counter() - started, 1)
        indexed_s, indexed = timed(table, queries, k, NPROBES)
        record.update(indexed_median_ms=round(1000 * statistics.median(indexed_s), 1),
                      indexed_queries_per_s=round(1 / statistics.median(indexed_s), 1),
                      recall_at_10=round(float(np.mean([len(set(a) & set(b)) / k
                                                        for a, b in zip(indexed, exact, strict=True)])), 3))
    record["load_avg"] = os.getloadavg()
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=list(DEFAULT_SIZES), help="NxD, e.g. 300000x32")
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--no-index", action="store_true", help="exact search only")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="thresher-vector-"))
    rows = []
    try:
        for size in args.sizes:
            n, dim = (int(v) for v in size.lower().split("x"))
            rows.append(measure(n, dim, n_queries=args.queries, k=args.k, workdir=workdir, index=not args.no_index))
            print(json.dumps(rows[-1]), flush=True)
            shutil.rmtree(workdir / f"db-{n}x{dim}", ignore_errors=True)
            args.out.write_text(json.dumps({"benchmark": "vector_search", "protocol": __doc__, "k": args.k,
                                            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                                            "results": rows}, indent=2) + "\n")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
