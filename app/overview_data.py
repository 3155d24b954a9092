"""The Overview page's share of the data access: the latest ingest's report (skipped files and
why), and renaming, deleting and comparing saved subsets. Readers are :func:`app.data.cached_reader`
(cached under the versions of the tables they declare)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

from app.data import cached_reader, open_workspace
from backend.ingest.report import IngestReport
from backend.storage import runs, subsets


@dataclass(frozen=True)
class IngestReportView:
    """The newest finished or failed ingest run and its report (``W/reports/<run_id>.csv``):
    ``problems`` (source, row, path, problem, action), ``reasons`` (reason, skipped; most first),
    ``error`` (a failed run's), ``missing`` (why there is no report to show)."""

    run_id: str
    status: str
    source: str
    n_ingested: int | None
    report_path: str
    problems: pd.DataFrame
    reasons: pd.DataFrame
    error: str | None = None
    missing: str | None = None


@cached_reader("runs", max_entries=8)
def ingest_report(root: str) -> IngestReportView | None:
    """The latest ingest's report (an ingest still running has written none yet); None before
    the first ingest."""
    ws = open_workspace(root)
    listed = runs.list_runs(ws, "ingest")
    listed = listed[listed["status"] != "running"]
    if listed.empty:
        return None
    run = listed.iloc[0]
    path = ws.reports_dir / f"{run['run_id']}.csv"
    config, summary = run.get("config") or {}, run.get("summary") or {}
    problems = pd.DataFrame(columns=["source", "row", "path", "problem", "action"])
    reasons = pd.DataFrame(columns=["reason", "skipped"])
    missing = None
    if path.exists():
        report = IngestReport.read_csv(path)
        problems = pd.DataFrame([asdict(p) for p in report.problems], columns=problems.columns)
        counted = sorted(report.reasons().items(), key=lambda item: (-item[1], item[0]))
        reasons = pd.DataFrame(counted, columns=reasons.columns)
    else:
        missing = f"its report `{path}` is missing; ingesting the source again writes a new one"
    error = run.get("error")
    return IngestReportView(str(run["run_id"]), str(run["status"]), str(config.get("source", "")),
                            summary.get("n_ingested"), str(path), problems, reasons,
                            error if isinstance(error, str) and error else None, missing)  # fmt: skip


@cached_reader("subsets", "samples", max_entries=8)
def subset_comparison(root: str, a: str, b: str) -> subsets.SubsetComparison:
    """``subsets.compare_subsets``; raises ``StorageError`` (one subset twice, an unknown name)."""
    return subsets.compare_subsets(open_workspace(root), a, b)


def rename_subset(root: str, old: str, new: str) -> int:
    """``subsets.rename_subset``; raises ``ConflictError`` / ``StorageError`` with the reason."""
    return subsets.rename_subset(open_workspace(root), old, new)


def delete_subset(root: str, name: str) -> int:
    """``subsets.delete_subset`` (returns how many ids it held); raises ``NotFoundError``."""
    return subsets.delete_subset(open_workspace(root), name)
