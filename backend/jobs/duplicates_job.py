"""Duplicate groups of a workspace for review: exact copies (same content hash) and near
duplicates (embedding cosine at least a threshold, or the rule chosen on the data,
:mod:`backend.scoring.duplicates`).

The near-duplicate pass is every sample's top neighbours (:func:`backend.scoring.knn.knn_search`:
exact up to 100k rows, its IVF index above, batched over all queries), thresholded and grouped
as a sparse graph; no N x N matrix. Above 100k rows this finds the same pairs as an exact
search (``bench/results/near_duplicates_scale.json``); the LanceDB index answers one query at a
time, which is what the Search page needs but far slower for all N samples."""

from __future__ import annotations

import numpy as np
import pandas as pd

from backend.jobs.project_job import default_embedding_key
from backend.scoring.duplicates import data_edges, near_duplicate_groups
from backend.scoring.health import TRAIN_SPLITS  # noqa: F401 - the split names the Duplicates page keeps first
from backend.scoring.knn import knn_search
from backend.storage.score_export import group_names
from backend.storage.workspace import Workspace

NEIGHBOURS = 10
GROUP_COLUMNS = ["group", "kind", "id", "label", "split", "path", "similarity"]


def duplicate_groups(ws: Workspace, *, embedding_key: str | None = None,
                     threshold: float | None = None) -> tuple[pd.DataFrame, float]:
    """(groups, the threshold used). One row per sample in a group: ``group`` (``exact-`` or
    ``near-`` and the group's smallest id: the name the scores export gives the same group,
    ``backend.storage.score_export.group_names``), ``kind``
    (exact / near), id, label, split, path, ``similarity`` (cosine to the group's first member;
    1 for exact copies); exact groups first, then near groups, largest first. ``threshold``:
    the least cosine of a near duplicate; ``None``: the rule chosen on the data
    (:func:`backend.scoring.duplicates.data_edges`: at least the returned threshold, or a pair set
    apart from everything else)."""
    if threshold is not None and not -1.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (-1, 1], got {threshold}")
    samples = ws.samples(columns=["id", "label", "split", "path", "content_hash"])
    frames = []
    hashed = samples[samples["content_hash"].notna() & (samples["content_hash"] != "")]
    copies = hashed[hashed.duplicated("content_hash", keep=False)].sort_values(["content_hash", "id"])
    if len(copies):
        frames.append(copies.assign(group=group_names(copies["id"], copies["content_hash"], "exact"), kind="exact",
                                    similarity=1.0))
    key = embedding_key or (default_embedding_key(ws) if ws.embedding_keys() else None)
    if key is not None:
        ids, vectors, _ = ws.load_embeddings(key)
        if len(ids) > 1:
            neighbors, sims = knn_search(vectors, min(NEIGHBOURS, len(ids) - 1))
            if threshold is None:
                edges, threshold = data_edges(neighbors, sims)
                groups = near_duplicate_groups(neighbors, sims, edges=edges)
            else:
                groups = near_duplicate_groups(neighbors, sims, threshold=threshold)
            members = np.flatnonzero(groups >= 0)
            if len(members):
                first = groups[members]
                near = pd.DataFrame({"id": ids[members],
                                     "similarity": np.einsum("ij,ij->i", vectors[members], vectors[first])})
                near["group"] = group_names(near["id"], pd.Series(first), "near")
                near = near.merge(samples.drop(columns=["content_hash"]), on="id").assign(kind="near")
                frames.append(near)
    threshold = 1.0 if threshold is None else threshold
    if not frames:
        return pd.DataFrame(columns=GROUP_COLUMNS), threshold
    out = pd.concat(frames, ignore_index=True)[GROUP_COLUMNS]
    size = out.groupby("group")["id"].transform("size")
    out = out.assign(_exact=out["kind"] == "exact", _size=size)
    out = out.sort_values(["_exact", "_size", "group", "similarity", "id"], ascending=[False, False, True, False, True])
    return out.drop(columns=["_exact", "_size"]).reset_index(drop=True), threshold
