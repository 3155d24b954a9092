"""Reader for a CSV or Parquet manifest with columns ``path``, ``label`` and optional ``split``, ``id``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from backend.ingest.candidates import Candidate, normalise_split, resolve_inside
from backend.ingest.folder import SourceError
from backend.ingest.images import sample_id_for_path
from backend.ingest.report import IngestReport, has_control_characters

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
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path} is not UTF-8 text ({_first_bad_byte(path)}): save it as UTF-8 and "
                          "ingest again") from exc
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise SourceError(f"{path} could not be read as {suffix[1:]}: {exc}") from exc
    raise SourceError(f"{path}: unsupported manifest type {suffix!r}; use .csv or .parquet")


def _first_bad_byte(path: Path) -> str:
    """Where a file stops being UTF-8, in words (pandas' own offset is within a buffer)."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return f"byte 0x{data[exc.start]:02x} on line {line}"
    return "a byte that is not UTF-8"


def read_manifest(path: str | Path, report: IngestReport, *, allow_outside_root: bool = False) -> list[Candidate]:
    """Candidates from a manifest; relative paths resolve against the manifest's folder.

    Unknown columns are reported once and ignored; rows with an empty path or label, a label with
    a line break, a duplicate id, or a path that leaves the manifest's folder (``../``, an
    absolute path elsewhere, a symlink out; allowed with ``allow_outside_root``) are reported
    with their 1-based data row and skipped. Labels are kept verbatim otherwise (commas, quotes,
    markup: the display escapes them).
    """
    path = Path(path).expanduser().resolve()
    frame = read_table_file(path)
    frame.columns = [str(c).strip() for c in frame.columns]
    repeated = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    if repeated:
        raise SourceError(f"{path}: the column(s) {', '.join(map(repr, repeated))} appear more than once "
                          "(spaces around names do not count); keep one of each")
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
        if has_control_characters(label):
            report.add(path, f"label {label!r} has a line break or control character: fix the row "
                       "(an unclosed quote joins the lines that follow it)", row=i, path=raw_path)
            continue
        try:
            file_path = resolve_inside(raw_path, base, allow_outside_root=allow_outside_root,
                                       what="the manifest's folder")
        except ValueError as exc:
            report.add(path, str(exc), row=i, path=raw_path)
            continue
        given_id = rec.get("id")
        has_id = given_id is not None and not pd.isna(given_id) and str(given_id).strip()
        sample_id = str(given_id).strip() if has_id else sample_id_for_path(file_path)
        if sample_id in seen:
            why = f"duplicate id {sample_id!r} (first on row {seen[sample_id]})" if has_id else \
                f"same file as row {seen[sample_id]} (a duplicate path): each file is one sample"
            report.add(path, why, row=i, path=raw_path)
            continue
        seen[sample_id] = i
        split = rec.get("split")
        split = normalise_split(None if split is None or pd.isna(split) else str(split))
        candidates.append(Candidate(sample_id, str(file_path), label, split, row=i))
    return candidates
