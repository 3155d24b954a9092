"""The ingest job: read a source, check every image, upsert samples, keep the report."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from backend.ingest.candidates import check_images, feature_only_rows
from backend.ingest.demo import write_digits
from backend.ingest.embeddings_file import read_embeddings_file
from backend.ingest.folder import SourceError, read_image_folder
from backend.ingest.manifest import read_manifest
from backend.ingest.model_outputs import read_classifier_file, read_logits_file
from backend.ingest.report import IngestReport
from backend.ingest.stored import STORED_COLUMNS, class_notes, report_replaced, split_known
from backend.jobs.embed_job import normalise_rows
from backend.jobs.tracking import recorded_run, stage
from backend.storage import decisions, model_outputs, schemas
from backend.storage.image_stats import write_image_stats
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
           embedding_key: str | None = None, allow_outside_root: bool = False,
           workers: int | None = None) -> IngestResult:
    """Ingest ``source`` into ``ws``. With ``embeddings=True`` the source is a Parquet/NPZ file of
    precomputed vectors, stored under ``embedding_key`` (default: ``imported-<file stem>``).

    Files outside the source's folder (a manifest's ``../`` or absolute paths elsewhere, symlinks
    out of an image folder) are refused unless ``allow_outside_root``. What happens to samples
    already in the workspace: :mod:`backend.ingest.stored`. ``workers``: processes that decode,
    hash and measure the image files (default: the CPU cores; 1: this process only; the same
    result either way)."""
    kind = "embeddings" if embeddings else detect_kind(source)
    source_text = DEMO_SOURCE if kind == "demo" else str(Path(source).expanduser().resolve())
    config = {"source": source_text, "kind": kind, "allow_outside_root": allow_outside_root}
    report = IngestReport()
    with recorded_run(ws, "ingest", config) as run:
        if kind == "embeddings":
            key = embedding_key or _imported_key(Path(source))
            n_rows, n_new, n_updated = _import_embeddings(ws, source, source_text, key, report, run.run_id,
                                                          allow_outside_root=allow_outside_root)
        else:
            key = None
            n_rows, n_new, n_updated = _ingest_images(ws, source, source_text, kind, report, run.run_id,
                                                      allow_outside_root=allow_outside_root, workers=workers)
        _note_classes(ws, source_text, report)
        report_path = _write_report(ws, run.run_id, report)
        run.summary = {"n_ingested": n_rows, "n_new": n_new, "n_updated": n_updated,
                       "n_skipped": len(report.skipped), "reasons": report.reasons(),
                       "report": str(report_path), "embedding_key": key}
    return IngestResult(run.run_id, n_rows, n_new, n_updated, report, report_path, key, report.reasons())


def _ingest_images(ws: Workspace, source: str | Path, source_text: str, kind: str, report: IngestReport,
                   run_id: str, *, allow_outside_root: bool, workers: int | None) -> tuple[int, int, int]:
    """Read, check and upsert the samples of an image source, then their pixel statistics
    (``image_stats``; a crash between the two commits leaves samples whose statistics the health
    stage computes from the file itself); returns (rows, new, updated)."""
    with stage(log, "find images"):
        if kind == "demo":
            candidates = read_image_folder(write_digits(ws.images_dir / "digits"), report)
        elif kind == "folder":
            candidates = read_image_folder(source, report, allow_outside_root=allow_outside_root)
        else:
            candidates = read_manifest(source, report, allow_outside_root=allow_outside_root)
    with stage(log, "read images"):
        rows, stats = check_images(candidates, source=source_text, report=report, ingested_at=utcnow(),
                                   workers=workers)
    _refuse_empty(ws, len(rows), source_text, report, run_id)
    n_rows = len(rows)
    with stage(log, "store samples"):
        table = pa.Table.from_pylist(rows, schema=schemas.SAMPLES.schema)
        rows = None  # 1M Python dicts; the Arrow table holds the same
        incoming = table.select(STORED_COLUMNS).to_pandas()
        stored = _stored_samples(ws, incoming["id"])
        if len(stored):
            changed = stored["id"].tolist()
            states = decisions.replay(_decision_log(ws, changed))
            manifest_rows = {c.id: c.row for c in candidates if c.row is not None}
            report_replaced(report, source_text, incoming, stored, states, manifest_rows)
        incoming = stored = None
        n_new, n_updated = ws.upsert_samples(table)
    with stage(log, "store image stats"):
        write_image_stats(ws, table.column("id").to_pylist(), table.column("content_hash").to_pylist(), stats)
    return n_rows, n_new, n_updated


def _import_embeddings(ws: Workspace, source: str | Path, source_text: str, key: str, report: IngestReport,
                       run_id: str, *, allow_outside_root: bool) -> tuple[int, int, int]:
    """Store an embeddings file's vectors and its new samples; returns (rows, new, already stored).

    Order: every check first (the vector width against the stored key's), then the vectors,
    then the new sample rows. Lance commits one table at a time, so a crash between the two
    commits leaves vectors without a sample (which ``load_dataset`` names with "re-ingest them",
    and which the rerun completes), never a sample without its vector. Samples already stored
    keep all their fields (:func:`backend.ingest.stored.split_known`)."""
    with stage(log, "read embeddings file"):
        imported = read_embeddings_file(source, report, allow_outside_root=allow_outside_root)
    n_rows = len(imported.candidates)
    _refuse_empty(ws, n_rows, source_text, report, run_id)
    _check_width(ws, key, imported.vectors.shape[1], source_text)
    ids = [c.id for c in imported.candidates]
    new, known = split_known(report, source_text, imported.candidates, _stored_samples(ws, pd.Series(ids, dtype=object)))
    n_new, n_known = len(new), len(known)
    rows = feature_only_rows(new, source=source_text, ingested_at=utcnow())
    new = known = None  # 1M candidates and their dicts: the Arrow table below holds what is needed
    new_samples = pa.Table.from_pylist(rows, schema=schemas.SAMPLES.schema)
    rows = None
    with stage(log, "store embeddings"):
        unit, norms = normalise_rows(imported.vectors, in_place=True)  # the reader's own buffer
        imported = None  # the raw (N, D) vectors are not needed once normalised
        ws.append_embeddings(key, ids, unit, norms, upsert=True)
    with stage(log, "store samples"):
        if new_samples.num_rows:
            ws.upsert_samples(new_samples)
    return n_rows, n_new, n_known


def _refuse_empty(ws: Workspace, n_rows: int, source_text: str, report: IngestReport, run_id: str) -> None:
    if not n_rows:
        report_path = _write_report(ws, run_id, report)
        lines = "\n  ".join(report.lines()[:10])
        raise SourceError(f"no sample could be ingested from {source_text} (report: {report_path}):\n  {lines}")


def _check_width(ws: Workspace, key: str, dim: int, source_text: str) -> None:
    """Refuse, before anything is written, vectors of another width than the stored ``key``'s."""
    name = schemas.embedding_table_name(key)
    if not ws.has_table(name):
        return
    stored_dim = ws.dataset(name).schema.field("embedding").type.list_size
    if stored_dim != dim:
        raise SourceError(f"{source_text} holds {dim}-d vectors but the stored embeddings {key!r} are "
                          f"{stored_dim}-d; nothing was written: pass --embedding-key NAME to store them apart")


def _stored_samples(ws: Workspace, ids: pd.Series) -> pd.DataFrame:
    """:data:`STORED_COLUMNS` of the stored samples among ``ids`` (one scan, a hash filter)."""
    table = ws.dataset("samples").to_table(columns=STORED_COLUMNS)
    mask = pc.is_in(table.column("id"), value_set=pa.array(ids.astype(str), pa.string()))
    return table.filter(mask).to_pandas()


def _decision_log(ws: Workspace, ids: list[str]) -> pd.DataFrame:
    """The decisions log of ``ids`` (read whole, then filtered, when they are many)."""
    if len(ids) <= 400:
        return decisions.read_log(ws, sample_ids=ids)
    log_frame = decisions.read_log(ws)
    return log_frame[log_frame["sample_id"].isin(set(ids))]


def _note_classes(ws: Workspace, source_text: str, report: IngestReport) -> None:
    """Notes on the workspace's classes after this ingest (one class; classes of one sample)."""
    labels = ws.dataset("samples").to_table(columns=["label"]).column("label")
    counted = pc.value_counts(labels).to_pylist()
    counts = {str(c["values"]): int(c["counts"]) for c in counted if c["values"] is not None}
    singles_labels = [label for label, n in counts.items() if n == 1]
    singles = pd.DataFrame(columns=["id", "label", "path"])
    if singles_labels:
        table = ws.dataset("samples").to_table(columns=["id", "label", "path"])
        singles = table.filter(pc.is_in(table.column("label"), value_set=pa.array(singles_labels))).to_pandas()
    class_notes(report, source_text, counts, singles)


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
