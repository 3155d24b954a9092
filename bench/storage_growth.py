"""Storage growth: bytes on disk after many subset saves, without and with compaction.

Run: ``.venv/bin/python bench/storage_growth.py [--saves 1000] [--out PATH]``; writes
``bench/results/storage_growth.json``. Not part of the unit tests (they check that compaction
keeps every row and bounds the versions; this measures the bytes and the time).

Protocol
--------
1. A workspace of 1,797 samples (the digits demo's size), no images.
2. ``--saves`` subset saves through ``subsets.save_subset`` (each one merge-insert commit plus one
   ``activity`` entry), five names in turn, each replaced by a seeded random 70 % of the samples
   (what repeated prunes of one dataset do).
3. Twice: with automatic compaction off (``maintenance.AUTO_EVERY`` above the number of saves:
   the behaviour before it existed) and on (the default, every 50 commits). For each: bytes and
   versions of ``subsets`` and ``activity``, and the time per save; then ``maintenance.maintain``
   (``thresher maintain``) and the bytes after it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from backend.storage import Workspace, maintenance, schemas, subsets  # noqa: E402
from backend.storage.workspace import utcnow  # noqa: E402

N_SAMPLES = 1_797
NAMES = 5
KEPT = 0.7


def _workspace(root: Path) -> Workspace:
    ws = Workspace.open(root, create=True)
    now = utcnow()
    ws.upsert_samples(pa.Table.from_pylist(
        [dict(id=f"digit-{i:04d}", path=None, label=str(i % 10), split="train", width=8, height=8,
              content_hash=f"h{i}", source="bench", ingested_at=now) for i in range(N_SAMPLES)],
        schema=schemas.SAMPLES.schema))
    return ws


def _state(ws: Workspace) -> dict[str, int]:
    out = {}
    for name in ("subsets", "activity"):
        out[f"{name}_bytes"] = maintenance.table_bytes(ws, name)
        out[f"{name}_versions"] = len(ws.dataset(name).versions())
    return out


def measure(saves: int, every: int, folder: Path) -> dict:
    maintenance.AUTO_EVERY = every
    ws = _workspace(folder)
    ids = np.array(sorted(ws.sample_ids()))
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for i in range(saves):
        kept = rng.choice(ids, int(KEPT * ids.size), replace=False)
        subsets.save_subset(ws, f"pruned {i % NAMES}", kept.tolist(), origin="prune", overwrite=True)
    seconds = time.perf_counter() - started
    after_saves = _state(ws)
    started = time.perf_counter()
    maintenance.maintain(ws)
    return {"auto_every": every if every <= saves else None, "saves": saves,
            "ms_per_save": round(1000 * seconds / saves, 1), "after_saves": after_saves,
            "maintain_s": round(time.perf_counter() - started, 2), "after_maintain": _state(ws)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saves", type=int, default=1_000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "storage_growth.json")
    args = parser.parse_args(argv)
    default_every = maintenance.AUTO_EVERY
    results = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load": os.getloadavg()},
               "samples": N_SAMPLES, "subset_size": int(KEPT * N_SAMPLES), "names": NAMES, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        for every in (10**9, default_every):  # off (never reached), then the default
            run = measure(args.saves, every, Path(tmp) / f"every-{every}")
            results["runs"].append(run)
            print(json.dumps(run))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
