"""Reader for precomputed embeddings: Parquet (``id``, ``label``, ``embedding`` list column,
optional ``path``, ``split``) or NPZ (arrays of the same names; ``embedding`` is 2-D)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from backend.ingest.candidates import Candidate, normalise_split
from backend.ingest.folder import SourceError
from backend.ingest.report import IngestReport

REQUIRED = ("id", "label", "embedding")
OPTIONAL = ("path", "split")


@dataclass
class ImportedEmbeddings:
    candidates: list[Candidate]
    vectors: np.ndarray  # (len(candidates), D) float32, as given (not normalised)


def _load_columns(path: Path) -> dict[str, object]:
    suffix = path.suffix.lower()
    if not path.is_file():
        raise SourceError(f"{path} does not exist")
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
            return {str(c): frame[c].tolist() for c in frame.columns}
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                return {name: npz[name] for name in npz.files}
    except (ValueError, OSError) as exc:
        raise SourceError(f"{path} could not be read: {exc}") from exc
    raise SourceError(f"{path}: unsupported embeddings file type {suffix!r}; use .parquet or .npz")


def read_embeddings_file(path: str | Path, report: IngestReport) -> ImportedEmbeddings:
    """Rows with a wrong vector length, non-finite values, an empty id/label or a duplicate id are
    reported with their 1-based row and skipped; the vector length is fixed by the first good row."""
    path = Path(path).expanduser().resolve()
    cols = _load_columns(path)
    missing = [c for c in REQUIRED if c not in cols]
    if missing:
        raise SourceError(
            f"{path} lacks the required column(s) {', '.join(missing)}; found {', '.join(cols) or 'none'} "
            "(need id, label, embedding; optional path, split)"
        )
    for col in cols:
        if col not in REQUIRED + OPTIONAL:
            report.add(path, f"unknown column {col!r}: known columns are id, label, embedding, path, split",
                       action="ignored column")
    n = len(cols["id"])
    paths = cols.get("path")
    splits = cols.get("split")
    base = path.parent
    dim: int | None = None
    seen: dict[str, int] = {}
    candidates: list[Candidate] = []
    vectors: list[np.ndarray] = []
    for i in range(n):
        row = i + 1
        sample_id = str(cols["id"][i]).strip()
        label = str(cols["label"][i]).strip()
        if not sample_id or sample_id == "None":
            report.add(path, "empty id", row=row)
            continue
        if not label or label == "None":
            report.add(path, "empty label", row=row, path=sample_id)
            continue
        try:
            vec = np.asarray(cols["embedding"][i], dtype=np.float32).reshape(-1)
        except (TypeError, ValueError):
            report.add(path, "embedding is not a list of numbers", row=row, path=sample_id)
            continue
        if dim is None:
            dim = vec.size
        if vec.size != dim or dim == 0:
            report.add(path, f"embedding length {vec.size} differs from {dim} (the first row's)", row=row,
                       path=sample_id)
            continue
        if not np.isfinite(vec).all():
            report.add(path, "embedding has NaN or infinite values", row=row, path=sample_id)
            continue
        if sample_id in seen:
            report.add(path, f"duplicate id {sample_id!r} (first on row {seen[sample_id]})", row=row)
            continue
        seen[sample_id] = row
        file_path = None
        if paths is not None and paths[i] is not None and str(paths[i]).strip() not in ("", "None", "nan"):
            p = Path(str(paths[i])).expanduser()
            file_path = str((p if p.is_absolute() else base / p).resolve())
        split = normalise_split(None if splits is None or splits[i] is None else str(splits[i]))
        candidates.append(Candidate(sample_id, file_path, label, split, row=row))
        vectors.append(vec)
    matrix = np.stack(vectors) if vectors else np.zeros((0, dim or 0), np.float32)
    return ImportedEmbeddings(candidates, matrix)
