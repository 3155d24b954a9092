"""The ingest job: read a source, check every image, upsert samples, keep the report."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from backend.ingest.candidates import check_images, feature_only_rows
from backend.ingest.demo import write_digits
from backend.ingest.embeddings_file import read_embeddings_file
from backend.ingest.folder import SourceError, read_image_folder
from backend.ingest.manifest import read_manifest
from backend.ingest.model_outputs import read_classifier_file, read_logits_file
from backend.ingest.report import IngestReport
from backend.jobs.embed_job import normalise_rows
from backend.jobs.tracking import recorded_run, stage
from backend.storage import model_outputs, schemas
from backend.storage.workspace import Workspace, utcnow

log = logging.getLogger(__name__)

DEMO_SOURCE = "demo"


@dataclass
class IngestResult:
    run_id: str
    n_ingested: int
    n_new: int
    n_updated: int
    report: IngestReport
    report_path: Path
    embedding_key: str | None = None
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def n_skipped(self) -> int:
        return len(self.report.skipped)


def detect_kind(source: str | Path) -> str:
    """``demo``, ``folder`` or ``manifest`` from the SOURCE argument."""
    if str(source) == DEMO_SOURCE:
        return "demo"
    path = Path(source).expanduser()
    if path.is_dir():
        return "folder"
    if path.suffix.lower() in (".csv", ".parquet", ".pq"):
        return "manifest"
    if not path.exists():
        raise SourceError(f"{path} does not exist; SOURCE is an image folder, a .csv/.parquet manifest or 'demo'")
    raise SourceError(f"{path} is neither a folder nor a .csv/.parquet manifest")


def ingest(ws: Workspace, source: str | Path, *, embeddings: bool = False,
           embedding_key: str | None = None) -> IngestResult:
    """Ingest ``source`` into ``ws``. With ``embeddings=True`` the source is a Parquet/NPZ file of
    precomputed vectors, stored under ``embedding_key`` (default: ``imported-<file stem>``)."""
    kind = "embeddings" if embeddings else detect_kind(source)
    source_text = DEMO_SOURCE if kind == "demo" else str(Path(source).expanduser().resolve())
    config = {"source": source_text, "kind": kind}
    report = IngestReport()
    with recorded_run(ws, "ingest", config) as run:
        now = utcnow()
        key = None
        if kind == "embeddings":
            with stage(log, "read embeddings file"):
                imported = read_embeddings_file(source, report)
                rows = feature_only_rows(imported.candidates, source=source_text, ingested_at=now)
            key = embedding_key or _imported_key(Path(source))
        else:
            if kind == "demo":
                folder = write_digits(ws.images_dir / "digits")
                candidates = read_image_folder(folder, report)
            elif kind == "folder":
                candidates = read_image_folder(source, report)
            else:
                candidates = read_manifest(source, report)
            rows = check_images(candidates, source=source_text, report=report, ingested_at=now)
        if not rows:
            report_path = _write_report(ws, run.run_id, report)
            lines = "\n  ".join(report.lines()[:10])
            raise SourceError(f"no sample could be ingested from {source_text} (report: {report_path}):\n  {lines}")
        n_rows = len(rows)
        with stage(log, "store samples"):
            table = pa.Table.from_pylist(rows, schema=schemas.SAMPLES.schema)
            rows = None  # 1M Python dicts; the Arrow table holds the same
            n_new, n_updated = ws.upsert_samples(table)
            table = None
        if kind == "embeddings":
            with stage(log, "store embeddings"):
                ids = [c.id for c in imported.candidates]
                unit, norms = normalise_rows(imported.vectors, in_place=True)  # the reader's own buffer
                imported = None  # the raw (N, D) vectors are not needed once normalised
                ws.append_embeddings(key, ids, unit, norms, upsert=True)
        report_path = _write_report(ws, run.run_id, report)
        run.summary = {"n_ingested": n_rows, "n_new": n_new, "n_updated": n_updated,
                       "n_skipped": len(report.skipped), "reasons": report.reasons(),
                       "report": str(report_path), "embedding_key": key}
    return IngestResult(run.run_id, n_rows, n_new, n_updated, report, report_path, key, report.reasons())


def ingest_logits(ws: Workspace, path: str | Path, *, name: str | None = None) -> tuple[str, int, int, IngestReport]:
    """Store a user's per-epoch logits; returns (name, samples, epochs, report)."""
    report = IngestReport()
    name = name or _imported_key(Path(path)).removeprefix("imported-")
    imported = read_logits_file(path, report, known_ids=ws.sample_ids())
    if not imported.ids:
        raise SourceError(f"{path}: no sample has logits for every epoch; see:\n  " + "\n  ".join(report.lines()[:10]))
    model_outputs.write_logits(ws, name, imported.ids, imported.epochs, imported.logits)
    return name, len(imported.ids), len(imported.epochs), report


def ingest_classifier(ws: Workspace, path: str | Path, *, name: str | None = None,
                      embedding_key: str | None = None) -> tuple[str, tuple[int, int]]:
    """Store a user's linear classifier over one stored embedding; returns (name, weights shape)."""
    if not embedding_key:
        raise SourceError("--classifier needs --embedding-key: the imported features the classifier reads")
    classifier = read_classifier_file(path)
    _, vectors, _ = ws.load_embeddings(embedding_key)
    if vectors.shape[1] != classifier.weights.shape[1]:
        raise SourceError(f"{path}: weights have {classifier.weights.shape[1]} columns but {embedding_key!r} "
                          f"vectors have {vectors.shape[1]} dimensions")
    name = name or _imported_key(Path(path)).removeprefix("imported-")
    model_outputs.write_classifier(ws, name, embedding_key=embedding_key, classes=classifier.classes,
                                   weights=classifier.weights, bias=classifier.bias)
    return name, classifier.weights.shape


def _imported_key(path: Path) -> str:
    stem = "".join(ch if ch.isalnum() or ch in "_.-" else "-" for ch in path.stem)[:100]
    return f"imported-{stem or 'features'}"


def _write_report(ws: Workspace, run_id: str, report: IngestReport) -> Path:
    return report.write_csv(ws.reports_dir / f"{run_id}.csv")
