"""The dataset the scorers and the prune job read from a workspace: labels and embeddings.

Labels are stored as strings; scorers take integer classes. ``classes`` fixes the order: label
strings sorted numerically when they are all integers ("2" < "10"), else alphabetically.
Kept apart from ``score_inputs`` (the probes, torch) so that pruning loads no model code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend.storage import decisions
from backend.storage.errors import StorageError
from backend.storage.workspace import Workspace


def sort_classes(labels: list[str]) -> list[str]:
    unique = sorted(set(labels))
    try:
        return sorted(unique, key=lambda s: (int(s), s))
    except ValueError:
        return unique


@dataclass
class Dataset:
    ids: np.ndarray  # (N,) object
    labels: np.ndarray  # (N,) int64 class index into ``classes``
    classes: list[str]
    unit: np.ndarray  # (N, D) float32 L2-normalised embeddings
    norms: np.ndarray  # (N,) norms before normalising
    embedding_key: str
    n_relabeled: int = 0  # samples whose label comes from a relabel decision

    @property
    def features(self) -> np.ndarray:
        """The unnormalised embeddings (what probes and neural-collapse metrics read)."""
        return self.unit * self.norms[:, None]

    @property
    def n_classes(self) -> int:
        return len(self.classes)


def load_dataset(ws: Workspace, embedding_key: str, *, current_labels: bool = True) -> Dataset:
    """The stored embeddings of ``embedding_key`` with their samples' labels as class indices.

    ``current_labels`` (default): the labels after the curator's ``relabel`` decisions
    (:mod:`backend.storage.decisions`), so a score or an evaluation run after curation learns the
    curated labels; ``False``: the labels as ingested.

    Ids are matched with one vectorised ``Index.get_indexer`` and labels coded with
    ``np.unique`` (per-id Python loops took ~10 s at 1M rows); same result as before.
    """
    ids, unit, norms = ws.load_embeddings(embedding_key)
    labels_by_id = ws.samples(columns=["id", "label"]).set_index("id")["label"]
    n_relabeled = 0
    if current_labels:
        states = decisions.decided_states(ws)
        relabels = states.dropna(subset=["current_label"]).set_index("id")["current_label"]
        relabels = relabels[relabels.index.isin(labels_by_id.index)]
        if len(relabels):
            labels_by_id = labels_by_id.copy()
            labels_by_id.loc[relabels.index] = relabels.to_numpy()
            n_relabeled = len(relabels)
    pos = labels_by_id.index.get_indexer(ids)
    if (pos < 0).any():
        missing = ids[pos < 0]
        raise StorageError(f"{len(missing)} embedded ids have no sample row (e.g. {missing[0]}); re-ingest them")
    label_text = labels_by_id.to_numpy()[pos].astype(str)
    unique_text, codes = np.unique(label_text, return_inverse=True)
    classes = sort_classes(unique_text.tolist())
    if len(classes) < 2:
        raise StorageError(f"scoring needs at least 2 classes; {ws.root} has {len(classes)}")
    index = {c: k for k, c in enumerate(classes)}
    labels = np.array([index[t] for t in unique_text.tolist()], dtype=np.int64)[codes.reshape(-1)]
    return Dataset(ids, labels, classes, unit, norms.astype(np.float32), embedding_key, n_relabeled)


def split_rows(ws: Workspace, ids: np.ndarray, split: str) -> np.ndarray:
    """Positions in ``ids`` of the samples whose split is ``split`` (sorted int64; empty if none)."""
    split_by_id = ws.samples(columns=["id", "split"]).set_index("id")["split"]
    return np.flatnonzero(split_by_id.reindex(ids).fillna("").to_numpy() == split)
