"""Score and evaluate read the labels after the curator's relabel decisions; prune applies them
itself (it also needs to know which samples were relabeled)."""

from __future__ import annotations

from pathlib import Path

from backend.jobs.dataset import load_dataset
from backend.storage import Workspace, decisions
from tests.app.app_testkit import EMBEDDING_KEY, add_pixel_embeddings, write_images


def test_load_dataset_applies_relabel_decisions(tmp_path: Path) -> None:
    from backend.jobs.ingest_job import ingest

    write_images(tmp_path / "images")
    ws = Workspace.open(tmp_path / "ws", create=True)
    ingest(ws, tmp_path / "images")
    add_pixel_embeddings(ws)
    before = load_dataset(ws, EMBEDDING_KEY)
    target = before.ids[0]
    old = before.classes[before.labels[0]]
    new = next(c for c in before.classes if c != old)
    decisions.decide(ws, "relabel", [target], to=new)
    after = load_dataset(ws, EMBEDDING_KEY)
    assert after.classes[after.labels[0]] == new and after.n_relabeled == 1
    assert (after.labels[1:] == before.labels[1:]).all()
    ingested = load_dataset(ws, EMBEDDING_KEY, current_labels=False)
    assert ingested.classes[ingested.labels[0]] == old and ingested.n_relabeled == 0
    decisions.undo(ws)
    assert load_dataset(ws, EMBEDDING_KEY).n_relabeled == 0
