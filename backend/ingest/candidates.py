"""What every reader produces: candidate samples, then checked and turned into ``samples`` rows (dicts)."""

from __future__ import annotations

from dataclasses import dataclass

from backend.ingest.images import ImageInfo, ImageProblem, inspect_images
from backend.ingest.report import IngestReport

SPLIT_SYNONYMS = {"train": "train", "training": "train", "val": "val", "valid": "val",
                  "validation": "val", "dev": "val", "test": "test", "testing": "test"}


def normalise_split(value: str | None) -> str:
    """``Validation`` -> ``val``; unknown names are kept as given (lower-cased); empty stays empty."""
    text = (value or "").strip().lower()
    return SPLIT_SYNONYMS.get(text, text)


@dataclass
class Candidate:
    id: str
    path: str | None
    label: str
    split: str
    row: int | None = None  # manifest row, for the report


def check_images(candidates: list[Candidate], *, source: str, report: IngestReport,
                 ingested_at) -> list[dict]:
    """Decode each candidate's image; bad files go to the report, good ones become sample rows."""
    infos = inspect_images([c.path for c in candidates])
    rows = []
    for cand, info in zip(candidates, infos, strict=True):
        if isinstance(info, ImageProblem):
            report.add(source, str(info), row=cand.row, path=cand.path or "")
            continue
        assert isinstance(info, ImageInfo)
        rows.append(_row(cand, source, ingested_at, info.width, info.height, info.content_hash))
    return rows


def _row(cand: Candidate, source: str, ingested_at, width, height, content_hash) -> dict:
    return {"id": cand.id, "path": cand.path, "label": cand.label, "split": cand.split,
            "width": width, "height": height, "content_hash": content_hash,
            "source": source, "ingested_at": ingested_at}


def feature_only_rows(candidates: list[Candidate], *, source: str, ingested_at) -> list[dict]:
    """Rows for samples that arrive as precomputed features (their image may not exist here)."""
    return [_row(c, source, ingested_at, None, None, None) for c in candidates]
