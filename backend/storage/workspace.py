"""The workspace: one folder per dataset, holding LanceDB tables, reports and images.

Layout::

    W/workspace.json        marker + format version
    W/lance/<table>.lance   LanceDB tables (samples, runs, projections, subsets, activity,
                            decisions, embeddings__<model key>, and the score tables)
    W/locks/                lock files (the decisions log's writers take one in turn)
    W/jobs/                 jobs started from the app: one folder each (spec, log, status)
    W/reports/              ingest reports (CSV) and other human-readable logs
    W/images/               images the workspace owns (the demo writes its PNGs here)

Concurrency design: workers and the app only ever *write* through Lance, whose commits are
optimistic and multi-process safe, and only ever *query* through an in-memory DuckDB
connection that scans Lance datasets (see :mod:`backend.storage.queries`). No DuckDB database
file exists, so the "Conflicting lock is held" failure of a file shared by two processes
cannot happen.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("LANCE_LOG", "error")  # Lance's Rust core logs WARN lines for routine events

import lance  # noqa: E402
import lancedb  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402

from backend.storage import schemas  # noqa: E402
from backend.storage.errors import NotFoundError, StorageError  # noqa: E402

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: the subset log moved from `decisions` to `activity`; `decisions` is per sample
MARKER = "workspace.json"
WRITE_CHUNK_ROWS = 65_536  # rows per slice when a large batch of vectors is written


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def sql_string(value: str) -> str:
    """Quote a value for a Lance filter expression (Lance filters take no bound parameters)."""
    return "'" + str(value).replace("'", "''") + "'"


def _migrate(root: Path, meta: dict) -> None:
    """Bring a format-1 workspace to format 2: its subset log (``decisions``, with columns
    ``target``, ``n_ids``) becomes ``activity``, so that ``decisions`` can hold label decisions.
    A rename of one folder: the data is not rewritten, and a second open finds nothing to do."""
    old = root / "lance" / "decisions.lance"
    new = root / "lance" / "activity.lance"
    if old.exists() and not new.exists():
        fields = lance.dataset(str(old)).schema.names
        if "target" in fields and "sample_id" not in fields:
            os.replace(old, new)
            log.info("moved the subset log of %s from decisions to activity", root)
    meta = dict(meta, format_version=FORMAT_VERSION)
    tmp = root / f".{MARKER}.partial"
    tmp.write_text(json.dumps(meta))
    os.replace(tmp, root / MARKER)



def _committed(folder: Path) -> bool:
    """A Lance dataset folder with a committed version (a manifest in ``_versions``)."""
    versions = folder / "_versions"
    return versions.is_dir() and any(p.suffix == ".manifest" for p in versions.iterdir())

class Workspace:
    """Handle on one workspace folder. Cheap to create; holds no locks."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.lance_dir = self.root / "lance"
        self.reports_dir = self.root / "reports"
        self.images_dir = self.root / "images"
        self.locks_dir = self.root / "locks"
        self.jobs_dir = self.root / "jobs"
        self.exports_dir = self.root / "exports"
        self._db = lancedb.connect(str(self.lance_dir))

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, root: str | os.PathLike, *, create: bool = False) -> Workspace:
        """Open the workspace at ``root``; with ``create=True`` make it when missing."""
        root = Path(root).expanduser()
        marker = root / MARKER
        if not marker.exists():
            if not create:
                hint = "run `thresher ingest --workspace {0} SOURCE` (or `thresher demo`) first"
                raise StorageError(f"{root} is not a Thresher workspace (no {MARKER}): " + hint.format(root))
            if root.exists() and any(root.iterdir()):
                raise StorageError(
                    f"{root} exists, is not empty and is not a Thresher workspace; "
                    "pick an empty or new folder for --workspace"
                )
            for sub in ("lance", "reports", "images", "locks"):
                (root / sub).mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps({"format_version": FORMAT_VERSION, "created_at": utcnow().isoformat()}))
        else:
            meta = json.loads(marker.read_text())
            if meta.get("format_version", 0) > FORMAT_VERSION:
                raise StorageError(
                    f"{root} was written by a newer Thresher (format {meta['format_version']}); upgrade Thresher"
                )
            if meta.get("format_version", 0) < FORMAT_VERSION:
                _migrate(root, meta)
        return cls(root)

    @staticmethod
    def exists(root: str | os.PathLike) -> bool:
        return (Path(root).expanduser() / MARKER).exists()

    # ------------------------------------------------------------------ tables
    def table_names(self) -> list[str]:
        if not self.lance_dir.exists():
            return []
        return sorted(p.name[: -len(".lance")] for p in self.lance_dir.glob("*.lance") if _committed(p))

    def has_table(self, name: str) -> bool:
        """Whether table ``name`` exists with at least one committed version. A process killed while
        it created a table can leave its folder without one (data files, no manifest); that is no
        table: readers skip it and the next write creates the table over it."""
        return _committed(self.lance_dir / f"{name}.lance")

    def table(self, name: str, *, schema: pa.Schema | None = None):
        """The LanceDB table ``name``; fixed tables (and any given ``schema``) are created empty."""
        if self.has_table(name):
            return self._db.open_table(name)
        if schema is None and name in schemas.FIXED_TABLES:
            schema = schemas.FIXED_TABLES[name].schema
        if schema is None:
            raise NotFoundError(f"workspace {self.root} has no table {name!r}")
        return self._db.create_table(name, schema=schema, exist_ok=True)

    def dataset(self, name: str) -> lance.LanceDataset:
        """A fresh read handle on the latest committed version of table ``name``."""
        if not self.has_table(name):
            if name in schemas.FIXED_TABLES:
                self.table(name)
            else:
                raise NotFoundError(f"workspace {self.root} has no table {name!r}")
        return lance.dataset(str(self.lance_dir / f"{name}.lance"))

    def table_version(self, name: str) -> int:
        """The latest committed version of table ``name`` (0 when it does not exist yet): a cheap
        cache key that changes with every write."""
        if not self.has_table(name):
            return 0
        return self.dataset(name).version

    def read(self, name: str, *, columns: list[str] | None = None, where: str | None = None) -> pd.DataFrame:
        return self.dataset(name).to_table(columns=columns, filter=where).to_pandas()

    def count(self, name: str) -> int:
        return self.dataset(name).count_rows() if (self.has_table(name) or name in schemas.FIXED_TABLES) else 0

    def compact(self, name: str) -> None:
        """Merge the small fragments that many appends leave behind."""
        if self.has_table(name):
            self.dataset(name).optimize.compact_files()

    # ------------------------------------------------------------------ samples
    def upsert_samples(self, rows: pa.Table) -> tuple[int, int]:
        """Insert new samples and update known ones (matched on ``id``); returns (new, updated)."""
        rows = rows.select(schemas.SAMPLES.columns).cast(schemas.SAMPLES.schema)
        known = self.sample_ids()
        incoming = rows.column("id").to_pylist()
        n_updated = sum(1 for i in incoming if i in known)
        table = self.table("samples")
        (
            table.merge_insert("id")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute(rows)
        )
        return len(incoming) - n_updated, n_updated

    def sample_ids(self) -> set[str]:
        return set(self.dataset("samples").to_table(columns=["id"]).column("id").to_pylist())

    def samples(self, columns: list[str] | None = None) -> pd.DataFrame:
        return self.read("samples", columns=columns)

    # ------------------------------------------------------------------ embeddings
    def embedding_keys(self) -> list[str]:
        prefix = schemas.EMBEDDING_PREFIX
        return [n[len(prefix) :] for n in self.table_names() if n.startswith(prefix)]

    def append_embeddings(self, key: str, ids: Iterable[str], unit_vectors: np.ndarray, norms: np.ndarray,
                          *, upsert: bool = False) -> None:
        """Append one batch of L2-normalised vectors in one commit (a crash loses at most this batch).

        With ``upsert=True`` vectors of ids already stored are replaced (same single commit); into a
        table that did not exist yet it is a plain append (Lance's merge_insert holds its own copy
        of the batch: ~+3 GB and 16 s of 29 s for a first import of 1M x 512).
        """
        unit_vectors = np.ascontiguousarray(unit_vectors, dtype=np.float32)
        n, dim = unit_vectors.shape
        schema = schemas.embedding_schema(dim)
        name = schemas.embedding_table_name(key)
        existed = self.has_table(name)
        table = self.table(name, schema=schema)
        stored_dim = table.schema.field("embedding").type.list_size
        if stored_dim != dim:
            raise StorageError(
                f"embedding table {name} holds {stored_dim}-d vectors, this batch is {dim}-d; "
                "use another model key or delete the table"
            )
        vectors = pa.FixedSizeListArray.from_arrays(pa.array(unit_vectors.reshape(-1)), dim)
        batch = pa.table(
            [pa.array(list(ids), pa.string()), vectors, pa.array(np.asarray(norms, np.float32))],
            schema=schema,
        )
        if batch.num_rows != n:
            raise ValueError(f"{batch.num_rows} ids for {n} vectors")
        if upsert and existed:
            table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(batch)
        else:  # streamed in slices, still one commit: Lance buffers a slice, not the whole batch
            table.add(batch.to_reader(max_chunksize=WRITE_CHUNK_ROWS))

    def embedded_ids(self, key: str) -> set[str]:
        name = schemas.embedding_table_name(key)
        if not self.has_table(name):
            return set()
        return set(self.dataset(name).to_table(columns=["id"]).column("id").to_pylist())

    def load_embeddings(self, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All stored vectors of one model: (ids (N,), unit vectors (N, D) float32, norms (N,))."""
        name = schemas.embedding_table_name(key)
        if not self.has_table(name):
            known = ", ".join(self.embedding_keys()) or "none yet"
            raise NotFoundError(
                f"no embeddings {key!r} in {self.root} (stored: {known}); run `thresher embed` first"
            )
        tbl = self.dataset(name).to_table()
        ids = np.asarray(tbl.column("id").to_pylist(), dtype=object)
        flat = tbl.column("embedding").combine_chunks()
        dim = flat.type.list_size
        vectors = flat.values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(-1, dim)
        norms = tbl.column("norm").to_numpy()
        return ids, vectors, norms

    # ------------------------------------------------------------------ projections
    def write_projection(self, run_id: str, ids: Iterable[str], xy: np.ndarray) -> None:
        xy = np.asarray(xy, dtype=np.float32)
        rows = pa.table(
            {"run_id": [run_id] * len(xy), "id": list(ids), "x": xy[:, 0], "y": xy[:, 1]},
            schema=schemas.PROJECTIONS.schema,
        )
        self.table("projections").add(rows)

    def read_projection(self, run_id: str) -> pd.DataFrame:
        return self.read("projections", columns=["id", "x", "y"], where=f"run_id = {sql_string(run_id)}")
