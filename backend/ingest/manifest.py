"""Reader for a CSV or Parquet manifest with columns ``path``, ``label`` and optional ``split``, ``id``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from backend.ingest.candidates import Candidate, normalise_split
from backend.ingest.folder import SourceError
from backend.ingest.images import sample_id_for_path
from backend.ingest.report import IngestReport

REQUIRED = ("path", "label")
OPTIONAL = ("split", "id")


def read_table_file(path: Path) -> pd.DataFrame:
    """A CSV (read as text, nothing guessed) or Parquet file, with a clear error if it cannot be read."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise SourceError(f"{path} does not exist")
    try:
        if suffix == ".csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False)
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise SourceError(f"{path} could not be read as {suffix[1:]}: {exc}") from exc
    raise SourceError(f"{path}: unsupported manifest type {suffix!r}; use .csv or .parquet")


def read_manifest(path: str | Path, report: IngestReport) -> list[Candidate]:
    """Candidates from a manifest; relative paths resolve against the manifest's folder.

    Unknown columns are reported once and ignored; rows with an empty path or label, or a
    duplicate id, are reported with their 1-based data row and skipped.
    """
    path = Path(path).expanduser().resolve()
    frame = read_table_file(path)
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise SourceError(
            f"{path} lacks the required column(s) {', '.join(missing)}; "
            f"found {', '.join(frame.columns) or 'none'} (need path, label; optional split, id)"
        )
    for col in frame.columns:
        if col not in REQUIRED + OPTIONAL:
            report.add(path, f"unknown column {col!r}: known columns are path, label, split, id",
                       action="ignored column")
    base = path.parent
    seen: dict[str, int] = {}
    candidates: list[Candidate] = []
    for i, rec in enumerate(frame.to_dict("records"), start=1):
        raw_path = "" if pd.isna(rec["path"]) else str(rec["path"]).strip()
        label = "" if pd.isna(rec["label"]) else str(rec["label"]).strip()
        if not raw_path:
            report.add(path, "empty path", row=i)
            continue
        if not label:
            report.add(path, "empty label", row=i, path=raw_path)
            continue
        file_path = Path(raw_path).expanduser()
        file_path = (file_path if file_path.is_absolute() else base / file_path).resolve()
        given_id = rec.get("id")
        sample_id = str(given_id).strip() if given_id is not None and not pd.isna(given_id) and str(given_id).strip() \
            else sample_id_for_path(file_path)
        if sample_id in seen:
            report.add(path, f"duplicate id {sample_id!r} (first on row {seen[sample_id]})", row=i, path=raw_path)
            continue
        seen[sample_id] = i
        split = rec.get("split")
        split = normalise_split(None if split is None or pd.isna(split) else str(split))
        candidates.append(Candidate(sample_id, str(file_path), label, split, row=i))
    return candidates
