"""Near duplicates at scale: the health stage's search (``knn_search``, IVF above 100k rows), the
data threshold and the component grouping (:mod:`backend.scoring.duplicates`) on 100k and 1M
synthetic 32-d embeddings with planted near-duplicate copies. Writes
``bench/results/near_duplicates_scale.json``. Not part of the unit tests.

Data (seeded): 1,000 random unit centres; every row a centre plus isotropic Gaussian noise,
renormalised. Then 1 % of the rows get perturbed copies appended (a third of them two copies,
so groups of 2 and 3), each copy the source plus noise of ``copy_scale`` x the within-cluster
noise, ``copy_scale`` uniform in [0.02, 0.3] (the hardest are near the data threshold). Truth:
the planted groups.

Measured per size, each size in a fresh child process (so its peak RSS is its own):
- ``search_seconds``: ``knn_search(unit, 10)`` as the health stage calls it (IVF: nlist
  ``4 sqrt(N)``, nprobe 32); ``group_seconds``: ``data_edges`` (the threshold, or a pair set
  apart) + ``near_duplicate_groups``;
- ``peak_rss_gb`` of the process, beside ``embeddings_gb`` (the float32 rows it holds);
- ``pair_recall_vs_exact``: on 20k random query rows, the pairs (query, neighbour) at or above
  the threshold among the query's exact top 10 (brute force over all N) that the IVF top 10 also
  has; the exact search over those 20k queries is timed too (``exact_20k_seconds``; a full exact
  search is N / 20k times that);
- precision / recall of the flagged set (``is_near_duplicate``) and of the planted pairs against
  the truth (a planted pair is found when both rows are in one group), under the shipped rule
  (``vs_truth``) and under the threshold alone (``vs_truth_threshold_only``, the rule before).
  ``pair_recall_vs_exact`` counts threshold pairs: the search's quality, whatever the rule.
At 100k the full exact search also runs, for the time ratio and the groups it gives.
``lancedb``: the same rows in a workspace's embedding table, its vector index built by
:func:`backend.storage.vector_index.ensure_index` (IVF_FLAT, cosine, sqrt(N) partitions, at or
above 20M values: 1M x 32 is, 100k x 32 is scanned exactly), then
:func:`backend.storage.vector_index.nearest` (11 results, the query itself dropped) for 500 of
the subsample's queries: seconds per query, that times N (every sample's neighbours, one query
each: what a near-duplicate pass through the index would cost) and the same pair recall.

Usage: ``nice -n 5 .venv/bin/python bench/near_duplicates_scale.py [--sizes 100000 1000000]``
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.scoring.duplicates import data_edges, near_duplicate_groups  # noqa: E402
from backend.scoring.knn import knn_search  # noqa: E402

DIM, CENTRES, NEIGHBOURS, SUBSAMPLE, LANCEDB_QUERIES = 32, 1000, 10, 20_000, 500
SPREAD = 0.15  # within-cluster noise per dimension (unit centres): median top-1 cosine ~0.7
PLANTED_SHARE = 0.01


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def planted(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(N + copies, 32) unit float32 rows and each row's planted group (-1: none; the source's index)."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.normal(size=(CENTRES, DIM)))
    x = np.empty((n, DIM), np.float32)
    for start in range(0, n, 100_000):
        stop = min(start + 100_000, n)
        x[start:stop] = centres[rng.integers(0, CENTRES, stop - start)] + rng.normal(0, SPREAD, (stop - start, DIM))
    x = unit(x)
    sources = rng.choice(n, int(PLANTED_SHARE * n), replace=False)
    sources = np.concatenate([sources, sources[: len(sources) // 3]])  # a third get a second copy
    scale = rng.uniform(0.02, 0.3, (len(sources), 1)) * SPREAD
    copies = unit(x[sources] + rng.normal(0, 1, (len(sources), DIM)) * scale)
    truth = np.full(n + len(sources), -1, np.int64)
    truth[sources] = sources
    truth[n:] = sources
    return np.vstack([x, copies]), truth


def pairs(neighbors: np.ndarray, sims: np.ndarray, rows: np.ndarray, threshold: float) -> set[tuple[int, int]]:
    """Unordered pairs (row, neighbour) with similarity at or above ``threshold``."""
    r, c = np.nonzero(sims >= threshold)
    a, b = rows[r], neighbors[r, c]
    return set(zip(np.minimum(a, b).tolist(), np.maximum(a, b).tolist(), strict=True))


def against_truth(groups: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    flagged, true = groups >= 0, truth >= 0
    tp = int((flagged & true).sum())
    copies = np.flatnonzero((truth >= 0) & (np.arange(len(truth)) != truth))  # every copy row
    found = (groups[copies] >= 0) & (groups[copies] == groups[truth[copies]])
    return {"precision": round(tp / max(int(flagged.sum()), 1), 4), "recall": round(tp / max(int(true.sum()), 1), 4),
            "planted_pair_recall": round(float(found.mean()), 4), "n_flagged": int(flagged.sum()),
            "n_true": int(true.sum())}


def one_size(n: int, seed: int) -> dict:
    x, truth = planted(n, seed)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    t0 = time.perf_counter()
    idx, sims = knn_search(x, NEIGHBOURS, seed=0)
    search_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    edges, threshold = data_edges(idx, sims)
    groups = near_duplicate_groups(idx, sims, edges=edges)
    group_s = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    rng = np.random.default_rng(seed + 1)
    sub = np.sort(rng.choice(len(x), min(SUBSAMPLE, len(x)), replace=False))
    t0 = time.perf_counter()
    ex_idx, ex_sims = knn_search(x, NEIGHBOURS, queries=sub, method="exact")
    exact_sub_s = time.perf_counter() - t0
    exact_pairs = pairs(ex_idx, ex_sims, sub, threshold)
    ann_pairs = pairs(idx[sub], sims[sub], sub, threshold)
    top10 = np.mean([len(set(a) & set(b)) / NEIGHBOURS for a, b in zip(idx[sub].tolist(), ex_idx.tolist(),
                                                                         strict=True)])
    out = {"n_rows": len(x), "dim": DIM, "method": "ivf" if len(x) > 100_000 else "exact",
           "search_seconds": round(search_s, 2), "group_seconds": round(group_s, 2),
           "threshold": round(threshold, 5), "embeddings_gb": round(x.nbytes / 2**30, 3),
           "rss_before_search_gb": round(base_rss, 3), "peak_rss_gb": round(peak, 3),
           "subsample_queries": len(sub), "exact_subsample_seconds": round(exact_sub_s, 2),
           "exact_full_seconds_estimate": round(exact_sub_s * len(x) / len(sub), 1),
           "pair_recall_vs_exact": round(len(exact_pairs & ann_pairs) / max(len(exact_pairs), 1), 4),
           "n_exact_pairs_in_subsample": len(exact_pairs), "recall_at_10_vs_exact": round(float(top10), 4),
           "vs_truth": against_truth(groups, truth),
           "vs_truth_threshold_only": against_truth(near_duplicate_groups(idx, sims, threshold=threshold), truth)}
    if len(x) <= 200_000:  # the full exact search, for the ratio and its groups
        t0 = time.perf_counter()
        e_idx, e_sims = knn_search(x, NEIGHBOURS, method="exact")
        out["exact_full_seconds"] = round(time.perf_counter() - t0, 2)
        e_groups = near_duplicate_groups(e_idx, e_sims, edges=data_edges(e_idx, e_sims)[0])
        out["exact_vs_truth"] = against_truth(e_groups, truth)
        out["groups_equal_to_exact"] = bool(np.array_equal(groups, e_groups))
    pick = np.random.default_rng(seed + 2).choice(len(sub), min(LANCEDB_QUERIES, len(sub)), replace=False)
    out["lancedb"] = lancedb_search(x, sub[pick], threshold, ex_idx[pick], ex_sims[pick])
    return out


def lancedb_search(x: np.ndarray, queries: np.ndarray, threshold: float, exact_idx: np.ndarray,
                   exact_sims: np.ndarray) -> dict:
    """Index build and per-query search through ``backend.storage.vector_index`` (see the docstring)."""
    import tempfile

    from backend.storage import vector_index
    from backend.storage.workspace import Workspace

    with tempfile.TemporaryDirectory(prefix="near-dup-lance-") as tmp:
        ws = Workspace.open(tmp, create=True)
        ids = np.array([f"s{i:07d}" for i in range(len(x))], dtype=object)
        for start in range(0, len(x), 200_000):
            ws.append_embeddings("bench", ids[start:start + 200_000], x[start:start + 200_000],
                                 np.ones(min(200_000, len(x) - start), np.float32))
        t0 = time.perf_counter()
        indexed = vector_index.ensure_index(ws, "bench")
        build_s = time.perf_counter() - t0
        position = {sample_id: i for i, sample_id in enumerate(ids)}
        found_idx = np.empty((len(queries), NEIGHBOURS), np.int64)
        found_sims = np.empty((len(queries), NEIGHBOURS), np.float32)
        t0 = time.perf_counter()
        for row, q in enumerate(queries):
            hits = vector_index.nearest(ws, "bench", x[q], k=NEIGHBOURS + 1)
            hits = hits[hits["id"] != ids[q]].head(NEIGHBOURS)
            found_idx[row] = [position[i] for i in hits["id"]]
            found_sims[row] = hits["similarity"].to_numpy()
        per_query = (time.perf_counter() - t0) / len(queries)
    exact_pairs = pairs(exact_idx, exact_sims, queries, threshold)
    # nearest() rounds similarities to 4 decimals: compare pairs at the rounded threshold
    lance_pairs = pairs(found_idx, found_sims, queries, round(threshold, 4) - 1e-4)
    return {"indexed": bool(indexed), "index_build_seconds": round(build_s, 2), "queries": len(queries),
            "seconds_per_query": round(per_query, 4), "all_samples_seconds_estimate": round(per_query * len(x), 1),
            "pair_recall_vs_exact": round(len(exact_pairs & lance_pairs) / max(len(exact_pairs), 1), 4),
            "n_exact_pairs": len(exact_pairs)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--one", type=int, help="run one size in this process and print its JSON")
    parser.add_argument("--runs", nargs="+", help="files each holding one --one run's JSON line: "
                        "assemble those (run concurrently) instead of running the sizes in turn")
    parser.add_argument("--note", default="", help="what the load averages cannot say (e.g. the load during --runs)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "near_duplicates_scale.json"))
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one_size(args.one, args.seed)))
        return {}
    runs = [json.loads(Path(f).read_text().strip().splitlines()[-1]) for f in args.runs or []]
    for n in [] if args.runs else args.sizes:
        child = subprocess.run([sys.executable, __file__, "--one", str(n), "--seed", str(args.seed)],
                               capture_output=True, text=True, check=True)
        runs.append(json.loads(child.stdout.strip().splitlines()[-1]))
        print(json.dumps(runs[-1]), file=sys.stderr)
    result = {"benchmark": "near duplicates at scale (bench/near_duplicates_scale.py docstring)",
              "machine": f"{platform.machine()}, shared 2-core box", "load_average": list(np.round(
                  __import__("os").getloadavg(), 2)), "note": args.note, "runs": runs}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
