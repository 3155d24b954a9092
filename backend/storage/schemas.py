"""Every table's schema, declared once.

The workspace keeps one LanceDB table per kind of record. Embedding tables are the only
parametrised ones (their vector width depends on the model), so they are built by
:func:`embedding_schema`; everything else is a constant :class:`TableSpec`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa

TIMESTAMP = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class TableSpec:
    """A table's name, its columns and the columns that identify a row."""

    name: str
    schema: pa.Schema
    key: tuple[str, ...]

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)


SAMPLES = TableSpec(
    "samples",
    pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("path", pa.string()),  # absolute path of the image; null for feature-only samples
            pa.field("label", pa.string()),
            pa.field("split", pa.string()),  # "train" | "val" | "test" | "" (unspecified)
            pa.field("width", pa.int32()),
            pa.field("height", pa.int32()),
            pa.field("content_hash", pa.string()),  # blake2b-128 of the file bytes
            pa.field("source", pa.string()),  # what it was ingested from
            pa.field("ingested_at", TIMESTAMP),
        ]
    ),
    key=("id",),
)

RUNS = TableSpec(
    "runs",
    pa.schema(
        [
            pa.field("run_id", pa.string(), nullable=False),
            pa.field("kind", pa.string()),  # ingest | embed | project | score | prune | ...
            pa.field("status", pa.string()),  # running | done | failed
            pa.field("config_json", pa.string()),
            pa.field("embedding_key", pa.string()),
            pa.field("seed", pa.int64()),
            pa.field("code_version", pa.string()),
            pa.field("created_at", TIMESTAMP),
            pa.field("finished_at", TIMESTAMP),
            pa.field("summary_json", pa.string()),
            pa.field("error", pa.string()),
            # the process that runs it (backend.storage.runs: interrupted runs); older tables
            # lack these three and get them, all null, on their next new run
            pa.field("pid", pa.int64()),
            pa.field("pid_start", pa.int64()),  # its start time, clock ticks since boot
            pa.field("host", pa.string()),
        ]
    ),
    key=("run_id",),
)

PROJECTIONS = TableSpec(
    "projections",
    pa.schema(
        [
            pa.field("run_id", pa.string(), nullable=False),
            pa.field("id", pa.string(), nullable=False),
            pa.field("x", pa.float32()),
            pa.field("y", pa.float32()),
        ]
    ),
    key=("run_id", "id"),
)

SUBSETS = TableSpec(
    "subsets",
    pa.schema(
        [
            pa.field("name", pa.string(), nullable=False),
            pa.field("id", pa.string(), nullable=False),
            # who saved it: selection (Explore) | review (Review page) | search (Search page) | prune
            # (thresher prune / the Prune page); subsets.save_subset's default is selection
            pa.field("origin", pa.string()),
            pa.field("run_id", pa.string()),
            pa.field("created_at", TIMESTAMP),
        ]
    ),
    key=("name", "id"),
)

ACTIVITY = TableSpec(
    "activity",
    pa.schema(
        [
            pa.field("decided_at", TIMESTAMP),
            pa.field("action", pa.string()),  # save_subset | replace_subset | delete_subset | rename_subset
            pa.field("target", pa.string()),
            pa.field("n_ids", pa.int64()),
            pa.field("detail_json", pa.string()),
        ]
    ),
    key=(),
)

DECISIONS = TableSpec(
    "decisions",
    pa.schema(
        [
            pa.field("seq", pa.int64(), nullable=False),  # order of commit (assigned under the log's lock)
            pa.field("decision_id", pa.string(), nullable=False),
            pa.field("sample_id", pa.string(), nullable=False),
            pa.field("action", pa.string(), nullable=False),  # relabel | keep | drop | unsure | tag | untag | undo
            pa.field("old_value", pa.string()),  # relabel: the label before; keep/drop/unsure: the status before
            pa.field("new_value", pa.string()),  # relabel: the new label; tag/untag: the tag; undo: the entry undone
            pa.field("reason", pa.string()),
            pa.field("author", pa.string()),
            pa.field("time", TIMESTAMP),
            pa.field("source", pa.string()),  # review | explore | search | cli | bulk | duplicates
            pa.field("score_run", pa.string()),  # the score run the decision was made from (may be null)
        ]
    ),
    key=("decision_id",),
)

SCORES = TableSpec(
    "scores",
    pa.schema(
        [
            pa.field("run_id", pa.string(), nullable=False),
            pa.field("id", pa.string(), nullable=False),
            pa.field("name", pa.string(), nullable=False),  # scorer name, e.g. el2n, forgetting, sims
            pa.field("value", pa.float64()),
        ]
    ),
    key=("run_id", "id", "name"),
)

LABEL_ISSUES = TableSpec(
    "label_issues",
    pa.schema(
        [
            pa.field("run_id", pa.string(), nullable=False),
            pa.field("id", pa.string(), nullable=False),
            pa.field("label_issue_score", pa.float64()),  # [0, 1], higher = more likely mislabeled
            pa.field("is_label_issue", pa.bool_()),
            pa.field("suggested_label", pa.string()),
            pa.field("detectors", pa.string()),  # comma-separated names of the detectors that flagged it
        ]
    ),
    key=("run_id", "id"),
)

COLLAPSE = TableSpec(
    "collapse",
    pa.schema(
        [
            pa.field("run_id", pa.string(), nullable=False),
            pa.field("source", pa.string()),  # embeddings | probe | imported
            pa.field("epoch", pa.int32()),  # -1 when not a training curve
            pa.field("metric", pa.string()),
            pa.field("class_label", pa.string()),  # null for dataset-level metrics
            pa.field("value", pa.float64()),
        ]
    ),
    key=("run_id", "source", "epoch", "metric", "class_label"),
)

IMPORTED_LOGITS = TableSpec(
    "imported_logits",
    pa.schema(
        [
            pa.field("name", pa.string(), nullable=False),  # what the user called this training run
            pa.field("id", pa.string(), nullable=False),
            pa.field("epoch", pa.int32(), nullable=False),
            pa.field("logits", pa.list_(pa.float32())),
        ]
    ),
    key=("name", "id", "epoch"),
)

CLASSIFIERS = TableSpec(
    "classifiers",
    pa.schema(
        [
            pa.field("name", pa.string(), nullable=False),
            pa.field("embedding_key", pa.string()),  # the features the classifier reads
            pa.field("classes_json", pa.string()),  # label names, in row order of the weights
            pa.field("weights", pa.list_(pa.float32())),  # (C * D,) row-major
            pa.field("bias", pa.list_(pa.float32())),  # (C,)
            pa.field("dim", pa.int32()),
        ]
    ),
    key=("name",),
)

#: Pixel statistics of each image sample, computed by ingest in the pass that decodes and hashes
#: the file (``backend.pixel_stats``), read by the score job's image-quality checks instead of
#: decoding every file again. A row holds for the file whose ``content_hash`` it carries: a row
#: whose hash is not the sample's (a workspace ingested before this table, a sample from an
#: embeddings file, a file changed since) is ignored and the image is read instead. NaN: a
#: statistic that cannot be computed (an image of 1 or 2 pixels a side has no sharpness).
IMAGE_STATS = TableSpec(
    "image_stats",
    pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("content_hash", pa.string()),  # the file the statistics were computed from
            pa.field("p99_luminance", pa.float64()),  # BT.601 luma in [0, 1], 99th percentile
            pa.field("p05_luminance", pa.float64()),  # ... 5th percentile
            pa.field("sharpness", pa.float64()),  # Laplacian variance / grey variance
            pa.field("entropy_bits", pa.float64()),  # of the 256-bin grey histogram, [0, 8]
            pa.field("colour_spread", pa.float64()),  # 95th percentile of max - min channel, [0, 1]
        ]
    ),
    key=("id",),
)

FIXED_TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (SAMPLES, RUNS, PROJECTIONS, SUBSETS, ACTIVITY, DECISIONS, SCORES, LABEL_ISSUES, COLLAPSE,
                 IMPORTED_LOGITS, CLASSIFIERS, IMAGE_STATS)
}

EMBEDDING_PREFIX = "embeddings__"
_SAFE_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,120}$")


def embedding_table_name(embedding_key: str) -> str:
    """The table that holds one model's vectors, e.g. ``embeddings__pixels-16``."""
    if not _SAFE_KEY.match(embedding_key):
        raise ValueError(
            f"embedding key {embedding_key!r} may only use letters, digits, '_', '.', '-' (1-120 chars)"
        )
    return EMBEDDING_PREFIX + embedding_key


def embedding_schema(dim: int) -> pa.Schema:
    """One row per sample: the L2-normalised vector and the norm it had before normalising.

    The norm is kept because some scores use it (SIMS "integrity", Grosz et al. 2024).
    """
    if dim <= 0:
        raise ValueError(f"embedding dimension must be positive, got {dim}")
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("embedding", pa.list_(pa.float32(), dim)),
            pa.field("norm", pa.float32()),
        ]
    )
