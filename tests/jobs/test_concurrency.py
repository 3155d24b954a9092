"""A worker job and the app's storage layer writing at the same time: no lock error, nothing lost."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

from backend.config import EmbedSettings
from backend.jobs.embed_job import embed
from backend.jobs.ingest_job import ingest
from backend.storage import Workspace, queries, runs, subsets
from tests.conftest import write_png


def _worker(root: str) -> None:
    ws = Workspace.open(root)
    embed(ws, EmbedSettings(model="pixels-4", batch_size=4), show_progress=False)  # 40 commits


def test_worker_embeds_while_app_saves_and_queries(tmp_path: Path) -> None:
    for i in range(160):
        write_png(tmp_path / "imgs" / f"c{i % 4}" / f"{i}.png", i)
    ws = Workspace.open(tmp_path / "ws", create=True)
    ingest(ws, tmp_path / "imgs")
    ids = sorted(ws.sample_ids())

    ctx = mp.get_context("spawn")
    worker = ctx.Process(target=_worker, args=(str(ws.root),))
    worker.start()
    engine = queries.QueryEngine(ws)  # the app's read side
    saved, seen_counts = [], []
    step = 0
    while worker.is_alive() or step < 5:
        name = f"sel {step}"
        subsets.save_subset(ws, name, ids[step % 100 : step % 100 + 20], origin="selection")
        saved.append(name)
        seen_counts.append(int(engine.sql("SELECT count(*) AS n FROM samples")["n"][0]))
        engine.sql("SELECT label, count(*) FROM samples GROUP BY label")
        step += 1
    worker.join(timeout=120)
    assert worker.exitcode == 0

    assert set(seen_counts) == {160}
    assert subsets.subset_names(ws) == sorted(saved)
    assert all(len(subsets.subset_ids(ws, name)) == 20 for name in saved)
    assert len(ws.read("activity")) == len(saved)
    key = ws.embedding_keys()[0]
    stored_ids, vectors, _ = ws.load_embeddings(key)
    assert sorted(stored_ids) == ids and vectors.shape == (160, 48)
    embed_run = runs.latest_run(ws, "embed")
    assert embed_run is not None and embed_run["summary"]["n_embedded"] == 160
