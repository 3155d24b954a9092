"""Where an export came from: the JSON record written beside every exported file.

One record per export (``<file>.provenance.json``, or ``provenance.json`` inside an exported image
folder; Parquet files also carry it in their schema metadata under :data:`PARQUET_KEY`), so a
manifest found months later still says which workspace, subset, prune run (method, ratio, seed,
score run, embedding model), decisions and code made it. The record is plain JSON::

    {"thresher_provenance": 1, "what": "manifest", "format": "parquet", "file": "/abs/half.parquet",
     "rows": 620, "workspace": "/abs/ws", "subset": {...} | null, "run": {...} | null,
     "score_run": {...} | null, "decisions": {...}, "code_version": "0.1.0+g1a2b3c4",
     "exported_at": "2025-01-01T12:00:00+00:00", ...}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from backend.storage import runs, subsets
from backend.storage.errors import NotFoundError
from backend.storage.export_paths import check_output, replace_atomically
from backend.storage.workspace import Workspace, utcnow
from backend.version import code_version

RECORD_VERSION = 1
PARQUET_KEY = b"thresher.provenance"
FOLDER_FILE = "provenance.json"
SIDECAR_SUFFIX = ".provenance.json"
#: The prune settings a record repeats from the run's config (the rest stays in the run).
PRUNE_FIELDS = ("method", "ratio", "seed", "per_class", "split", "label_issues", "dedup", "score_run", "options")


def sidecar_path(out: Path, fmt: str) -> Path:
    """Where the record of an export to ``out`` goes."""
    return out / FOLDER_FILE if fmt == "imagefolder" else out.with_name(out.name + SIDECAR_SUFFIX)


def run_origin(ws: Workspace, run_id: str | None) -> dict[str, Any] | None:
    """What a record says of the run ``run_id``: kind, embedding model, code version and, for a
    prune, its method, ratio, seed, score run and what decisions did to it; None for no run."""
    if not isinstance(run_id, str) or not run_id:  # a hand selection has none (NaN as read back)
        return None
    try:
        run = runs.get_run(ws, run_id)
    except NotFoundError:
        return {"run_id": run_id, "status": "deleted from the workspace"}
    origin: dict[str, Any] = {
        "run_id": run_id,
        "kind": run["kind"],
        "status": run["status"],
        "embedding_model": run["embedding_key"],
        "created_at": pd.Timestamp(run["created_at"]).isoformat(),
        "code_version": run["code_version"],
    }
    if run["kind"] == "prune":
        origin.update({k: run["config"].get(k) for k in PRUNE_FIELDS})
        summary = run["summary"]
        origin.update({k: summary[k] for k in ("n_kept", "n_removed", "n_pinned", "n_dropped_by_decision",
                                               "n_relabeled", "decisions_seq") if k in summary})
    else:
        origin["config"] = run["config"]
    return origin


def subset_origin(ws: Workspace, subset: str | None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(the subset's record, the record of the run that made it), or (None, None) for the whole dataset."""
    if subset is None:
        return None, None
    record = subsets.subset_record(ws, subset)
    run_id = record.run_id if isinstance(record.run_id, str) and record.run_id else None
    described = {"name": record.name, "n_samples": len(record.ids), "origin": record.origin,
                 "run_id": run_id, "saved_at": record.saved_at}
    return described, run_origin(ws, run_id)


def decision_counts(scope: pd.DataFrame, *, include_dropped: bool, last_seq: int) -> dict[str, Any]:
    """What decisions did to the samples an export covers. ``scope``: the
    :func:`backend.storage.decisions.curated_samples` rows of the dataset or subset, dropped
    ones included."""
    dropped = scope["dropped"].to_numpy(bool)
    return {
        "applied": int(scope["n_decisions"].sum()),  # entries in effect (not undone) on these samples
        "log_seq": last_seq,  # the log's last entry when exported: replaying up to it gives these rows
        "samples_decided": int((scope["n_decisions"] > 0).sum()),
        "relabeled": int((scope["label"].astype(str) != scope["original_label"].astype(str)).sum()),
        "kept": int(scope["pinned"].sum()),
        "unsure": int(scope["decision"].eq("unsure").sum()),
        "tagged": int((scope["tags"] != "").sum()),
        "dropped": int(dropped.sum()),
        "dropped_left_out": 0 if include_dropped else int(dropped.sum()),
        "include_dropped": include_dropped,
    }


def build(ws: Workspace, *, what: str, fmt: str, out: Path | None, rows: int, subset: str | None = None,
          scope: pd.DataFrame | None = None, include_dropped: bool = False, last_seq: int = 0,
          score_run: str | None = None, **extra: Any) -> dict[str, Any]:
    """The record of one export (module docstring). ``out``: the absolute path written (None for
    a download); ``scope``: the curated rows the export covers, for the decision counts."""
    described, made_by = subset_origin(ws, subset)
    record: dict[str, Any] = {
        "thresher_provenance": RECORD_VERSION,
        "what": what,
        "format": fmt,
        "file": None if out is None else str(out),
        "rows": rows,
        "workspace": str(ws.root),
        "subset": described,
        "run": made_by,
        "score_run": run_origin(ws, score_run),
        "decisions": None if scope is None else decision_counts(scope, include_dropped=include_dropped,
                                                                 last_seq=last_seq),
        "code_version": code_version(),
        "exported_at": utcnow().isoformat(),
    }
    record.update(extra)
    return record


def to_json(record: dict[str, Any]) -> str:
    return json.dumps(record, indent=2, default=str)


def write(record: dict[str, Any], path: Path, *, overwrite: bool = False) -> Path:
    """``record`` as JSON at ``path`` (checked as every export is: an existing file is replaced
    only with ``overwrite``), written to a temporary file renamed into place."""
    path = check_output(path, overwrite=overwrite)
    return replace_atomically(path, (to_json(record) + "\n").encode())

