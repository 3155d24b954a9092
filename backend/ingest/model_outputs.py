"""Readers for a user's own model outputs: per-epoch logits and a linear classifier.

- Logits: Parquet with columns ``id``, ``epoch``, ``logits`` (a list of C numbers), one row per
  sample per epoch (training dynamics from the user's own training run).
- Classifier: NPZ with ``weights`` (C, D), optional ``bias`` (C,) and ``classes`` (C label names,
  in the order of the rows of ``weights``), for features imported with ``--embeddings``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from backend.ingest.folder import SourceError
from backend.ingest.report import IngestReport


@dataclass
class ImportedLogits:
    ids: list[str]  # (N,) samples that have logits for every epoch
    epochs: list[int]  # (E,) sorted
    logits: np.ndarray  # (E, N, C) float32


@dataclass
class ImportedClassifier:
    weights: np.ndarray  # (C, D) float32
    bias: np.ndarray  # (C,) float32
    classes: list[str]  # (C,) label names


def read_logits_file(path: str | Path, report: IngestReport, *, known_ids: set[str]) -> ImportedLogits:
    """Rows with an unknown id, a number of logits other than the most common one (the class
    count C), non-finite values or a duplicate (id, epoch) are reported and skipped; samples that
    lack some epoch are reported and left out."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise SourceError(f"{path} does not exist")
    if path.suffix.lower() not in (".parquet", ".pq"):
        raise SourceError(f"{path}: logits must be a .parquet file with columns id, epoch, logits")
    try:
        frame = pd.read_parquet(path)
    except (ValueError, OSError) as exc:
        raise SourceError(f"{path} could not be read: {exc}") from exc
    missing = [c for c in ("id", "epoch", "logits") if c not in frame.columns]
    if missing:
        raise SourceError(f"{path} lacks the column(s) {', '.join(missing)} (need id, epoch, logits)")
    rows = []  # (row, id, epoch, logits) of the rows that parse; C is then their most common length
    for row, (sample_id, epoch, logits) in enumerate(zip(frame["id"], frame["epoch"], frame["logits"], strict=True), start=1):
        sample_id = str(sample_id)
        if sample_id not in known_ids:
            report.add(path, f"unknown id {sample_id!r}: ingest the sample first", row=row)
            continue
        try:
            vec = np.asarray(logits, dtype=np.float32).reshape(-1)
            epoch = int(epoch)
        except (TypeError, ValueError):
            report.add(path, "epoch is not an integer or logits are not numbers", row=row, path=sample_id)
            continue
        rows.append((row, sample_id, epoch, vec))
    n_classes, why = _most_common_length([vec.size for *_, vec in rows])
    values: dict[tuple[str, int], np.ndarray] = {}
    for row, sample_id, epoch, vec in rows:
        if vec.size != n_classes:
            report.add(path, f"{vec.size} logits, not {n_classes} ({why})", row=row, path=sample_id)
            continue
        if not np.isfinite(vec).all():
            report.add(path, "logits have NaN or infinite values", row=row, path=sample_id)
            continue
        if (sample_id, epoch) in values:
            report.add(path, f"duplicate (id, epoch) = ({sample_id!r}, {epoch})", row=row)
            continue
        values[(sample_id, epoch)] = vec
    if not values:
        raise SourceError(f"{path}: no usable logits rows (see the report)")
    epochs = sorted({e for _, e in values})
    ids = sorted({i for i, _ in values})
    complete = [i for i in ids if all((i, e) in values for e in epochs)]
    for sample_id in sorted(set(ids) - set(complete)):
        report.add(path, f"logits missing for some of the {len(epochs)} epochs; sample left out", path=sample_id)
    logits = np.stack([np.stack([values[(i, e)] for i in complete]) for e in epochs]) if complete else \
        np.zeros((len(epochs), 0, n_classes or 0), np.float32)
    return ImportedLogits(complete, epochs, logits)


def _most_common_length(sizes: list[int]) -> tuple[int, str]:
    """(the most common non-zero length, on a tie the first; the reason in words)."""
    sizes_array = np.asarray(sizes, dtype=np.int64)
    sizes_array = sizes_array[sizes_array > 0]
    if not sizes_array.size:
        return 0, "no row has logits"
    values, counts = np.unique(sizes_array, return_counts=True)
    most = counts.max()
    length = int(sizes_array[np.isin(sizes_array, values[counts == most])][0])
    return length, f"the length of {most:,} of the {sizes_array.size:,} rows"


def read_classifier_file(path: str | Path) -> ImportedClassifier:
    path = Path(path).expanduser().resolve()
    if not path.is_file() or path.suffix.lower() != ".npz":
        raise SourceError(f"{path}: the classifier must be an existing .npz with weights (C, D) [, bias, classes]")
    with np.load(path, allow_pickle=False) as npz:
        if "weights" not in npz.files:
            raise SourceError(f"{path} has no 'weights' array (found {', '.join(npz.files)})")
        weights = np.asarray(npz["weights"], dtype=np.float32)
        if weights.ndim != 2:
            raise SourceError(f"{path}: weights must be 2-D (classes, features), got shape {weights.shape}")
        c = weights.shape[0]
        bias = np.asarray(npz["bias"], dtype=np.float32) if "bias" in npz.files else np.zeros(c, np.float32)
        classes = [str(x) for x in npz["classes"]] if "classes" in npz.files else [str(i) for i in range(c)]
    if bias.shape != (c,) or len(classes) != c:
        raise SourceError(f"{path}: bias must have shape ({c},) and classes {c} names")
    if not (np.isfinite(weights).all() and np.isfinite(bias).all()):
        raise SourceError(f"{path}: weights or bias have NaN or infinite values")
    return ImportedClassifier(weights, bias, classes)
