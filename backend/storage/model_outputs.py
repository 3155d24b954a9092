"""A user's own model outputs kept in the workspace: per-epoch logits and linear classifiers."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from backend.storage import schemas
from backend.storage.errors import NotFoundError
from backend.storage.workspace import Workspace, sql_string


def write_logits(ws: Workspace, name: str, ids: list[str], epochs: list[int], logits: np.ndarray) -> None:
    """Replace the logits stored under ``name`` with ``logits`` (E, N, C), one commit."""
    e, n, _ = logits.shape
    rows = pa.table(
        {
            "name": [name] * (e * n),
            "id": [i for _ in epochs for i in ids],
            "epoch": np.repeat(np.asarray(epochs, np.int32), n),
            "logits": [row for ep in logits for row in ep.astype(np.float32)],
        },
        schema=schemas.IMPORTED_LOGITS.schema,
    )
    (
        ws.table("imported_logits")
        .merge_insert(["name", "id", "epoch"])
        .when_matched_update_all()
        .when_not_matched_insert_all()
        .when_not_matched_by_source_delete(f"name = {sql_string(name)}")
        .execute(rows)
    )


def logits_names(ws: Workspace) -> list[str]:
    return sorted(set(ws.dataset("imported_logits").to_table(columns=["name"]).column("name").to_pylist()))


def check_logits_name(ws: Workspace, name: str) -> str:
    """``name`` when imported logits are stored under it; else NotFoundError listing the stored ones."""
    stored = logits_names(ws)
    if name not in stored:
        raise NotFoundError(f"no imported logits named {name!r} (stored: {', '.join(stored) or 'none'}); import "
                            "them with `thresher ingest --logits FILE.parquet`")
    return name


def read_logits(ws: Workspace, name: str) -> tuple[list[str], list[int], np.ndarray]:
    """(ids (N,), epochs (E,), logits (E, N, C)) stored under ``name``."""
    frame = ws.read("imported_logits", where=f"name = {sql_string(name)}")
    if frame.empty:
        check_logits_name(ws, name)  # raises, naming the stored ones
    ids = sorted(frame["id"].unique())
    epochs = sorted(int(e) for e in frame["epoch"].unique())
    pos = {i: k for k, i in enumerate(ids)}
    epos = {e: k for k, e in enumerate(epochs)}
    c = len(frame["logits"].iloc[0])
    out = np.zeros((len(epochs), len(ids), c), np.float32)
    for sample_id, epoch, vec in zip(frame["id"], frame["epoch"], frame["logits"], strict=True):
        out[epos[int(epoch)], pos[sample_id]] = vec
    return ids, epochs, out


def write_classifier(ws: Workspace, name: str, *, embedding_key: str, classes: list[str],
                     weights: np.ndarray, bias: np.ndarray) -> None:
    row = {"name": name, "embedding_key": embedding_key, "classes_json": json.dumps(classes),
           "weights": weights.astype(np.float32).reshape(-1).tolist(), "bias": bias.astype(np.float32).tolist(),
           "dim": int(weights.shape[1])}
    table = pa.Table.from_pylist([row], schema=schemas.CLASSIFIERS.schema)
    ws.table("classifiers").merge_insert("name").when_matched_update_all().when_not_matched_insert_all().execute(table)


def read_classifier(ws: Workspace, name: str) -> dict:
    frame = ws.read("classifiers", where=f"name = {sql_string(name)}")
    if frame.empty:
        stored = ", ".join(classifier_names(ws)) or "none"
        raise NotFoundError(f"no classifier named {name!r} (stored: {stored}); import one with "
                            "`thresher ingest --classifier FILE.npz`")
    row = frame.iloc[0]
    classes = json.loads(row["classes_json"])
    weights = np.asarray(row["weights"], np.float32).reshape(len(classes), int(row["dim"]))
    return {"name": name, "embedding_key": row["embedding_key"], "classes": classes, "weights": weights,
            "bias": np.asarray(row["bias"], np.float32)}


def classifier_names(ws: Workspace) -> list[str]:
    return sorted(ws.dataset("classifiers").to_table(columns=["name"]).column("name").to_pylist())
