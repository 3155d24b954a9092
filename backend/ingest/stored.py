"""What an ingest says about the samples it meets again, and about the classes it leaves behind.

Two rules, one per kind of source:

- An image source (folder, manifest) is the truth about its files: a sample it names again takes
  the new label, path and split, and the report says so per row, with the decisions the sample
  has. Decisions live in their own log (``backend.storage.decisions``) keyed by sample id, so
  they are kept and replayed over the new label (a relabel decision still wins).
- An embeddings file adds vectors: a sample already in the workspace keeps every stored field
  (path, split, size, hash, label); a file label that differs is reported per row with the way
  to change it (a relabel decision), never applied.
"""

from __future__ import annotations

import pandas as pd

from backend.ingest.candidates import Candidate
from backend.ingest.report import IngestReport

STORED_COLUMNS = ["id", "path", "label", "split", "content_hash"]
MAX_CLASS_NOTES = 20  # one-sample classes named one by one; the rest in one line


def _text(value) -> str | None:
    return None if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)


def report_replaced(report: IngestReport, source: str, incoming: pd.DataFrame, stored: pd.DataFrame,
                    states: pd.DataFrame, rows: dict[str, int | None]) -> int:
    """One ``updated`` line per sample of ``incoming`` that ``stored`` holds with another label,
    path, split or content; returns how many.

    ``incoming`` / ``stored``: :data:`STORED_COLUMNS` (``stored`` only the ids of ``incoming``
    that exist); ``states``: :func:`backend.storage.decisions.replay` of those samples' log;
    ``rows``: each id's manifest row (None for a folder)."""
    if stored.empty:
        return 0
    both = incoming.merge(stored, on="id", suffixes=("", "_stored"))
    changes = pd.Series(False, index=both.index)
    for col in ("label", "path", "split", "content_hash"):
        changes |= both[col].fillna("").astype(str) != both[f"{col}_stored"].fillna("").astype(str)
    decided = states.set_index("id") if len(states) else None
    for rec in both[changes].to_dict("records"):
        parts = [f"{col} {_text(rec[f'{col}_stored'])!r} -> {_text(rec[col])!r}" for col in ("label", "path", "split")
                 if _text(rec[col]) != _text(rec[f"{col}_stored"])]
        if _text(rec["content_hash"]) != _text(rec["content_hash_stored"]):
            parts.append("the image content changed")
        message = f"id {rec['id']!r} already in the workspace: " + ", ".join(parts)
        if decided is not None and rec["id"] in decided.index and decided.loc[rec["id"], "n_decisions"]:
            state = decided.loc[rec["id"]]
            n = int(state["n_decisions"])
            message += f"; it has {n} decision{'s' if n != 1 else ''} in the log, kept"
            if state["current_label"]:
                message += f" (its label after decisions stays {state['current_label']!r})"
        report.add(source, message, row=rows.get(rec["id"]), path=_text(rec["path"]) or "", action="updated")
    return int(changes.sum())


def split_known(report: IngestReport, source: str, candidates: list[Candidate],
                stored: pd.DataFrame) -> tuple[list[Candidate], list[Candidate]]:
    """(new candidates, candidates already stored) of an embeddings file; for a stored one the
    stored fields are kept and each file value that differs is reported (``kept stored``)."""
    if stored.empty:
        return candidates, []
    known_ids = set(stored["id"])
    old = [c for c in candidates if c.id in known_ids]
    given = pd.DataFrame({"id": [c.id for c in old], "label": [c.label for c in old],
                          "path": [c.path for c in old], "split": [c.split for c in old],
                          "row": [c.row for c in old]})
    both = given.merge(stored, on="id", suffixes=("", "_stored"))
    label_differs = both["label"] != both["label_stored"].fillna("").astype(str)
    path_differs = both["path"].notna() & (both["path"] != both["path_stored"])
    split_differs = (both["split"] != "") & (both["split"] != both["split_stored"].fillna("").astype(str))
    for rec in both[label_differs | path_differs | split_differs].to_dict("records"):
        kept = []
        if rec["label"] != _text(rec["label_stored"]):
            kept.append(f"its stored label {_text(rec['label_stored'])!r} is kept, not the file's {rec['label']!r} "
                        f"(to change it: thresher decide relabel {rec['id']} --to {rec['label']})")
        if rec["path"] is not None and rec["path"] != _text(rec["path_stored"]):
            kept.append(f"its stored path {_text(rec['path_stored'])!r} is kept, not {rec['path']!r}")
        if rec["split"] and rec["split"] != (_text(rec["split_stored"]) or ""):
            kept.append(f"its stored split {_text(rec['split_stored'])!r} is kept, not {rec['split']!r}")
        report.add(source, f"id {rec['id']!r} already in the workspace: " + "; ".join(kept),
                   row=None if pd.isna(rec["row"]) else int(rec["row"]), path=rec["id"], action="kept stored")
    return [c for c in candidates if c.id not in known_ids], old


def class_notes(report: IngestReport, source: str, counts: dict[str, int], singles: pd.DataFrame) -> None:
    """Notes on the workspace's classes after an ingest: one class only (scorers need two), and
    each class with a single sample (``singles``: id, label, path of those samples)."""
    if len(counts) == 1:
        (label, n), = counts.items()
        report.add(source, f"one class only: all {n:,} samples are labelled {label!r}; label-noise scoring "
                   "and pruning need at least 2 classes: ingest samples of another class", action="note")
    for i, rec in enumerate(singles.sort_values("label").to_dict("records")):
        if i == MAX_CLASS_NOTES:
            report.add(source, f"{len(singles) - MAX_CLASS_NOTES:,} more classes have 1 sample each", action="note")
            break
        report.add(source, f"class {rec['label']!r} has 1 sample: no score can compare it with its class; "
                   "add samples of it or relabel it", path=_text(rec["path"]) or rec["id"], action="note")
