"""Reader for precomputed embeddings: Parquet (``id``, ``label``, ``embedding`` list column,
optional ``path``, ``split``) or NPZ (arrays of the same names; ``embedding`` is 2-D)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from backend.ingest.candidates import Candidate, normalise_split, resolve_inside
from backend.ingest.folder import SourceError
from backend.ingest.report import IngestReport, has_control_characters

REQUIRED = ("id", "label", "embedding")
OPTIONAL = ("path", "split")
BATCH_ROWS = 65_536  # rows per Parquet batch while streaming the embedding column, and per check block


@dataclass
class ImportedEmbeddings:
    candidates: list[Candidate]
    vectors: np.ndarray  # (len(candidates), D) float32, as given (not normalised)


@dataclass
class _Vectors:
    """The embedding column without per-row objects: one flat float32 array and each row's
    extent in it. ``lengths[i] == -1`` marks a row that is not a list of numbers."""

    flat: np.ndarray  # (total,) float32
    starts: np.ndarray  # (N,) int64
    lengths: np.ndarray  # (N,) int64
    fixed_dim: int | None = None  # the length a FixedSizeList column declares

    def row(self, i: int) -> np.ndarray | None:
        if self.lengths[i] < 0:
            return None
        return self.flat[self.starts[i] : self.starts[i] + self.lengths[i]]

    def uniform_dim(self) -> int | None:
        """D when every row is a list of D numbers (then ``flat`` reshapes to (N, D))."""
        if self.lengths.size and (self.lengths == self.lengths[0]).all() and self.lengths[0] > 0:
            return int(self.lengths[0])
        return None

    def expected_dim(self) -> tuple[int | None, str]:
        """(D, why D): the length the schema fixes, else the most common length of the non-empty
        rows (on a tie, the one that comes first), so one odd first row costs one row, not all."""
        if self.fixed_dim:
            return self.fixed_dim, "the length the file's schema fixes"
        lengths = self.lengths[self.lengths > 0]
        if not lengths.size:
            return None, ""
        values, counts = np.unique(lengths, return_counts=True)
        most = counts.max()
        dim = int(lengths[np.isin(lengths, values[counts == most])][0])
        return dim, f"the length of {most:,} of the {lengths.size:,} rows"

    def row_checks(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(finite, all_zero): (N,) bool each, one vectorised pass in row blocks, when the rows
        have one length."""
        dim = self.uniform_dim()
        if dim is None:
            return None
        matrix = self.flat.reshape(-1, dim)
        finite = np.empty(matrix.shape[0], dtype=bool)
        zero = np.empty(matrix.shape[0], dtype=bool)
        for lo in range(0, matrix.shape[0], BATCH_ROWS):
            block = matrix[lo : lo + BATCH_ROWS]
            finite[lo : lo + BATCH_ROWS] = np.isfinite(block).all(axis=1)
            zero[lo : lo + BATCH_ROWS] = ~block.any(axis=1)
        return finite, zero

    @classmethod
    def from_rows(cls, values: list) -> _Vectors:
        """Slow path, one row at a time, for columns that are not lists of numbers."""
        pieces, lengths = [], np.full(len(values), -1, dtype=np.int64)
        for i, value in enumerate(values):
            if value is None:
                continue
            try:
                vec = np.asarray(value, dtype=np.float32).reshape(-1)
            except (TypeError, ValueError):
                continue
            pieces.append(vec)
            lengths[i] = vec.size
        return cls._packed(np.concatenate(pieces) if pieces else np.zeros(0, np.float32), lengths)

    @classmethod
    def from_matrix(cls, matrix: np.ndarray) -> _Vectors:
        matrix = np.asarray(matrix, dtype=np.float32)
        matrix = matrix.reshape(matrix.shape[0], int(np.prod(matrix.shape[1:], dtype=np.int64)))
        lengths = np.full(matrix.shape[0], matrix.shape[1], dtype=np.int64)
        return cls._packed(matrix.reshape(-1), lengths)

    @classmethod
    def from_parquet(cls, pf: pq.ParquetFile) -> _Vectors:
        """List columns of numbers are streamed batch by batch into one float32 buffer (1M x 512:
        2 GB, neither an Arrow copy beside it nor 1M NumPy objects); other types take
        :meth:`from_rows`."""
        kind = pf.schema_arrow.field("embedding").type
        listlike = pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)
        if not (listlike and (pa.types.is_floating(kind.value_type) or pa.types.is_integer(kind.value_type))):
            return cls.from_rows(pf.read(columns=["embedding"]).column(0).to_pylist())
        n = pf.metadata.num_rows
        lengths = np.empty(n, dtype=np.int64)
        flat = np.empty(0, dtype=np.float32)
        used = row = 0
        for batch in pf.iter_batches(columns=["embedding"], batch_size=BATCH_ROWS):
            array = batch.column(0)
            lengths[row : row + len(array)] = (
                pc.list_value_length(array).fill_null(-1).to_numpy(zero_copy_only=False)
            )
            values = array.flatten().to_numpy(zero_copy_only=False)  # nulls inside a list -> NaN
            if used + values.size > flat.size:  # first batch: sized for n rows like it
                estimate = int(np.ceil(values.size / max(len(array), 1) * (n - row)))
                grown = np.empty(max(used + estimate, used + values.size, 2 * flat.size), np.float32)
                grown[:used] = flat[:used]
                flat = grown
            flat[used : used + values.size] = values
            used += values.size
            row += len(array)
        fixed = kind.list_size if pa.types.is_fixed_size_list(kind) else None
        return cls._packed(flat[:used], lengths[:row], fixed)

    @classmethod
    def _packed(cls, flat: np.ndarray, lengths: np.ndarray, fixed_dim: int | None = None) -> _Vectors:
        starts = np.zeros(lengths.size, dtype=np.int64)
        np.cumsum(np.maximum(lengths, 0)[:-1], out=starts[1:])
        return cls(flat, starts, lengths, fixed_dim)


def _load_columns(path: Path) -> tuple[dict[str, list], _Vectors | None]:
    """(the columns other than ``embedding`` as Python lists, the embedding column)."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise SourceError(f"{path} does not exist")
    try:
        if suffix in (".parquet", ".pq"):
            pf = pq.ParquetFile(path, pre_buffer=False)  # pre-buffering keeps the whole file in Arrow memory
            names = pf.schema_arrow.names
            cols = {str(c): pf.read(columns=[c]).column(0).to_pylist() for c in names if c != "embedding"}
            return cols, _Vectors.from_parquet(pf) if "embedding" in names else None
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                cols = {name: npz[name].tolist() for name in npz.files if name != "embedding"}
                if "embedding" not in npz.files:
                    return cols, None
                embedding = npz["embedding"]
                if embedding.ndim not in (1, 2) or embedding.dtype.kind not in "biuf":
                    raise SourceError(
                        f"{path}: 'embedding' must be a 2-D numeric array (rows x dimensions), got "
                        f"shape {embedding.shape} of {embedding.dtype}"
                    )
                return cols, _Vectors.from_matrix(embedding)
    except SourceError:
        raise
    except (ValueError, OSError, pa.ArrowException) as exc:
        raise SourceError(f"{path} could not be read: {exc}") from exc
    raise SourceError(f"{path}: unsupported embeddings file type {suffix!r}; use .parquet or .npz")


def read_embeddings_file(path: str | Path, report: IngestReport, *,
                        allow_outside_root: bool = False) -> ImportedEmbeddings:
    """Rows with a wrong vector length, non-finite values, an empty id/label, a label with a line
    break or a duplicate id are reported with their 1-based row and skipped. The vector length is
    the one a FixedSizeList schema declares, else the most common row length. An all-zero vector
    is kept with a note. A ``path`` that leaves the file's folder is dropped (the sample is kept
    without an image) unless ``allow_outside_root``.

    Memory: the vectors stay in one flat buffer until the kept rows are gathered into the
    (N, D) matrix, and when every row is kept that matrix is the buffer itself (peak for a
    1M x 512 float32 Parquet file: ``bench/scale.py``)."""
    path = Path(path).expanduser().resolve()
    cols, vectors = _load_columns(path)
    present = [*cols, *(["embedding"] if vectors is not None else [])]
    missing = [c for c in REQUIRED if c not in present]
    if missing:
        raise SourceError(
            f"{path} lacks the required column(s) {', '.join(missing)}; found {', '.join(present) or 'none'} "
            "(need id, label, embedding; optional path, split)"
        )
    assert vectors is not None
    for col in present:
        if col not in REQUIRED + OPTIONAL:
            report.add(path, f"unknown column {col!r}: known columns are id, label, embedding, path, split",
                       action="ignored column")
    n = len(cols["id"])
    sizes = {name: len(values) for name, values in cols.items()} | {"embedding": vectors.lengths.size}
    if len(set(sizes.values())) > 1:
        raise SourceError(
            f"{path}: the columns have different lengths ({', '.join(f'{k} {v}' for k, v in sizes.items())}); "
            "every column needs one entry per sample"
        )
    paths = cols.get("path")
    splits = cols.get("split")
    checks = vectors.row_checks()
    dim, dim_reason = vectors.expected_dim()
    base = path.parent
    seen: dict[str, int] = {}
    candidates: list[Candidate] = []
    kept: list[int] = []
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
        if has_control_characters(label):
            report.add(path, f"label {label!r} has a line break or control character: fix the row", row=row,
                       path=sample_id)
            continue
        vec = vectors.row(i)
        if vec is None:
            report.add(path, "embedding is not a list of numbers", row=row, path=sample_id)
            continue
        if vec.size == 0:
            report.add(path, "embedding is an empty list", row=row, path=sample_id)
            continue
        if vec.size != dim:
            report.add(path, f"embedding length {vec.size} differs from {dim} ({dim_reason})", row=row,
                       path=sample_id)
            continue
        if not (checks[0][i] if checks is not None else np.isfinite(vec).all()):
            report.add(path, "embedding has NaN or infinite values", row=row, path=sample_id)
            continue
        if sample_id in seen:
            report.add(path, f"duplicate id {sample_id!r} (first on row {seen[sample_id]})", row=row)
            continue
        seen[sample_id] = row
        if checks[1][i] if checks is not None else not vec.any():
            report.add(path, "embedding is all zeros: it has no direction (cosine 0 to every sample); kept, "
                       "check the model that produced it", row=row, path=sample_id, action="kept")
        file_path = None
        if paths is not None and paths[i] is not None and str(paths[i]).strip() not in ("", "None", "nan"):
            try:
                file_path = str(resolve_inside(str(paths[i]).strip(), base, allow_outside_root=allow_outside_root,
                                               what="the embeddings file's folder"))
            except ValueError as exc:
                report.add(path, f"{exc}; the sample is kept without an image", row=row, path=sample_id,
                           action="path dropped")
        split = normalise_split(None if splits is None or splits[i] is None else str(splits[i]))
        candidates.append(Candidate(sample_id, file_path, label, split, row=row))
        kept.append(i)
    return ImportedEmbeddings(candidates, _gather(vectors, kept, dim or 0))


def _gather(vectors: _Vectors, kept: list[int], dim: int) -> np.ndarray:
    """The kept rows as one (len(kept), dim) float32 matrix; no copy when every row is kept."""
    if not kept:
        return np.zeros((0, dim), np.float32)
    if vectors.uniform_dim() == dim:
        matrix = vectors.flat.reshape(-1, dim)
        return matrix if len(kept) == matrix.shape[0] else matrix[np.asarray(kept, dtype=np.int64)]
    return np.stack([vectors.row(i) for i in kept])
