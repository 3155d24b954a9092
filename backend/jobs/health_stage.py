"""The dataset-health stage of the score job: duplicates, split leaks, outliers and image
quality (:mod:`backend.scoring.health`) as per-sample scores of the run.

Columns (all float; flags 0/1; NaN where a check cannot run on a sample):
``is_exact_duplicate``, ``duplicate_group``, ``is_near_duplicate``, ``near_duplicate_group``
(groups numbered 0..G-1 within the run, NaN when alone), ``is_split_leak``, ``outlier_score`` /
``is_outlier`` (class-conditional Mahalanobis, robust fit), ``knn_outlier_score`` / ``is_knn_outlier``, and
``is_<check>`` / ``<check>_score`` for the image checks (NaN for feature-only samples and files
Pillow cannot read). Each leak's train sample (a string id, which a score column cannot hold) is
in the run summary's ``health.leak_sources`` ({leaking id: train id}, the first
``MAX_LEAK_SOURCES``), which the scores export turns into its ``split_leak_source`` column
(:func:`backend.storage.score_export.scores_frame`); it is also in the leak's duplicate group.

The blur check measures each image against images of its kind: the mean of the median over its
10 nearest neighbours (the same search) and the median over the class those neighbours vote for
(:func:`backend.scoring.health.blur_reference`).

Image statistics come from the ``image_stats`` table that ingest fills in the pass that decodes
each file (:mod:`backend.pixel_stats`), so an image folder or manifest is not decoded again here.
A sample without a row for its current file (imported from an embeddings file, a workspace
ingested before the table existed) has its image read here instead, with the same function and
so the same numbers, and hashed when ingest stored no hash.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from backend.jobs.dataset import Dataset
from backend.pixel_stats import read_image
from backend.scoring import health
from backend.scoring.duplicates import data_edges, near_duplicate_groups
from backend.scoring.knn import knn_search
from backend.storage import results
from backend.storage.image_stats import read_image_stats
from backend.storage.workspace import Workspace

log = logging.getLogger(__name__)

NEIGHBOURS = 10
MAX_LEAK_SOURCES = 10_000
FLAG_COLUMNS = ("is_exact_duplicate", "is_near_duplicate", "is_split_leak", "is_outlier", "is_knn_outlier",
                *(f"is_{check}" for check in health.QUALITY_CHECKS))
#: The scores beside the flags (what Explore can colour by, with the flags).
SCORE_COLUMNS = ("outlier_score", "knn_outlier_score", *(f"{check}_score" for check in health.QUALITY_CHECKS))


def health_stage(ws: Workspace, run_id: str, data: Dataset, *,
                 neighbors: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """Compute :func:`health_scores`, store the columns as scores of ``run_id``; the summary
    (counts per flag, the near-duplicate threshold, leak sources) for the run's summary."""
    columns, summary = health_scores(ws, data, neighbors=neighbors)
    results.write_scores(ws, run_id, data.ids, columns)
    log.info("dataset health: %s", ", ".join(f"{k} {v}" for k, v in summary["counts"].items() if v) or "no issue")
    return summary


def health_scores(ws: Workspace, data: Dataset, *,
                  neighbors: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """({column: (N,) values in ``data.ids`` order}, summary). ``neighbors``: the score job's
    shared (indices, similarities) search when it made one, else one search here."""
    samples = ws.samples(columns=["id", "split", "path", "content_hash", "width", "height"]).set_index("id")
    rows = samples.reindex(data.ids)
    n = len(data.ids)
    stored = stored_image_stats(ws, data.ids, rows)
    stats, hashes, unreadable = image_stats(rows["path"].tolist(), rows["content_hash"].tolist(), stored=stored)
    exact = health.exact_duplicate_groups(hashes)
    if neighbors is None and n > 1:
        neighbors = knn_search(data.unit, min(NEIGHBOURS, n - 1), seed=0)
    threshold = 1.0
    if neighbors is not None:
        idx, sims = neighbors
        edges, threshold = data_edges(idx, sims)
        near = near_duplicate_groups(idx, sims, edges=edges)
    else:
        idx = sims = edges = None
        near = np.full(n, -1, dtype=np.int64)
    is_leak, source = health.split_leaks(rows["split"].tolist(), exact, near, idx, edges)
    outlier = health.mahalanobis_outlier_score(data.features, data.labels, n_classes=data.n_classes)
    knn_outlier = health.knn_outlier_score(sims) if sims is not None else np.full(n, np.nan)
    columns = {
        "is_exact_duplicate": (exact >= 0).astype(np.float64),
        "duplicate_group": health.group_numbers(exact),
        "is_near_duplicate": (near >= 0).astype(np.float64),
        "near_duplicate_group": health.group_numbers(near),
        "is_split_leak": is_leak.astype(np.float64),
        "outlier_score": outlier,
        "is_outlier": health.flag_high(outlier).astype(np.float64),
        "knn_outlier_score": knn_outlier,
        "is_knn_outlier": np.where(np.isfinite(knn_outlier), health.flag_high(knn_outlier), np.nan),
    }
    groups = health.content_groups(data.labels, idx) if idx is not None else None
    columns.update(health.image_quality(stats, groups=groups, neighbor_indices=idx))
    leaks = np.flatnonzero(is_leak)
    summary = {
        "near_duplicate_threshold": round(float(threshold), 6),
        "counts": {name: int(np.nansum(columns[name])) for name in FLAG_COLUMNS},
        "n_images_read": int(np.isfinite(stats[:, 0]).sum()),  # with statistics, from ingest or read here
        "n_image_stats_from_ingest": int(np.isfinite(stored[:, 0]).sum()),
        "unreadable_images": unreadable[:20],
        "leak_sources": {str(data.ids[i]): str(data.ids[source[i]]) for i in leaks[:MAX_LEAK_SOURCES]},
    }
    return columns, summary


def stored_image_stats(ws: Workspace, ids, rows) -> np.ndarray:
    """(N, len(STAT_NAMES)) statistics ingest stored for the current file of each of ``ids``
    (``rows``: their samples rows, with width, height and content_hash), NaN rows where none is."""
    pixel, found = read_image_stats(ws, list(ids), rows["content_hash"].tolist())
    size = rows[["width", "height"]].to_numpy(dtype=np.float64, na_value=np.nan)
    stats = np.hstack([size, pixel])
    stats[~found] = np.nan
    return stats


def image_stats(paths: list, stored_hashes: list | None = None, *, stored: np.ndarray | None = None
                ) -> tuple[np.ndarray, list[str | None], list[str]]:
    """(N, len(STAT_NAMES)) pixel statistics: ``stored`` rows (from ingest) where they are not
    NaN, else read from the file; NaN rows for samples without either; each sample's
    content hash (``stored_hashes[i]`` when ingest stored one, else the file's hash as ingest
    computes it, :func:`backend.ingest.images.content_hash`: samples ingested from an embeddings
    file have none stored; None without either); and the paths Pillow could not read, each with
    why (logged: the job log says which file to fix)."""
    from backend.ingest.images import content_hash  # imports Pillow: not on the app's import path

    stats = np.full((len(paths), len(health.STAT_NAMES)), np.nan) if stored is None else np.array(stored, np.float64)
    known_hashes = stored_hashes if stored_hashes is not None else [None] * len(paths)
    hashes: list[str | None] = [h if isinstance(h, str) and h else None for h in known_hashes]
    measured = np.isfinite(stats[:, 0])  # a stored row: its width is known
    todo = [i for i, p in enumerate(paths) if isinstance(p, str) and p and not measured[i]]
    unreadable: list[str] = []

    def one(i: int) -> tuple[int, np.ndarray | None, str | None]:
        try:
            if hashes[i] is None:  # not stored at ingest: hash the file here
                hashes[i] = content_hash(Path(paths[i]).read_bytes())
            return i, read_image(paths[i]), None
        except (OSError, ValueError) as exc:  # Pillow's UnidentifiedImageError is an OSError
            return i, None, f"{paths[i]}: {exc}"

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:  # Pillow decodes without the GIL
        for i, row, error in pool.map(one, todo):
            if row is None:
                unreadable.append(error)
            else:
                stats[i] = row
    if unreadable:
        log.warning("image quality: %d of %d images unreadable, their checks are NaN (first: %s); "
                    "re-ingest or fix these files", len(unreadable), len(todo), unreadable[0])
    return stats, hashes, unreadable
