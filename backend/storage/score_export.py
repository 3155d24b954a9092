"""Exports of a scoring run: one row per sample with the verdict and every score, and the
neural-collapse metrics as JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from backend.storage import results
from backend.storage.errors import StorageError
from backend.storage.export import write_atomic
from backend.storage.workspace import Workspace

#: Where the collapse export takes its headline numbers from, in order of preference: a user's
#: classifier, the probe's last epoch (both have a classifier, so nc3 / nc4 exist), the embeddings.
HEADLINE_ORDER = ("imported:", "probe_final", "embeddings")
HEADLINE_METRICS = ("nc1", "equinorm", "equiangularity", "max_angle", "etf_distance", "of_distance",
                    "nc3", "nc4", "equinorm_w", "equiangularity_w", "max_angle_w", "etf_distance_w",
                    "imbalance_ratio")


#: The per-sample neural-collapse distances a score run stores beside its scores (written by
#: ``backend.jobs.score_job.sample_collapse_scores``): own class mean, nearest other, own / other.
NC_SAMPLE_SCORES = ("nc_own_distance", "nc_other_distance", "nc_distance_ratio")


def collapse_samples(ws: Workspace, run_id: str) -> pd.DataFrame:
    """id, label, split, path and the :data:`NC_SAMPLE_SCORES` of a score run, largest own /
    nearest-other ratio first; empty when the run stored none (runs made before them)."""
    wide = results.read_scores(ws, run_id)
    if not set(NC_SAMPLE_SCORES) <= set(wide.columns):
        return pd.DataFrame(columns=["id", "label", "split", "path", *NC_SAMPLE_SCORES])
    frame = ws.samples(columns=["id", "label", "split", "path"]).merge(wide[["id", *NC_SAMPLE_SCORES]], on="id")
    frame = frame.sort_values(["nc_distance_ratio", "id"], ascending=[False, True], kind="stable")
    return frame.reset_index(drop=True)


def scores_frame(ws: Workspace, run_id: str) -> pd.DataFrame:
    """id, label, suggested_label, label_issue_score, is_label_issue, detectors, <name>_score..."""
    samples = ws.samples(columns=["id", "label", "split"])
    verdict = results.read_label_issues(ws, run_id)
    wide = results.read_scores(ws, run_id)
    wide = wide.rename(columns={c: f"{c}_score" for c in wide.columns if c != "id"})
    frame = samples.merge(verdict, on="id", how="inner").merge(wide, on="id", how="left")
    return frame.sort_values("id", kind="stable").reset_index(drop=True)


def collapse_summary(ws: Workspace, run_id: str) -> dict:
    """Headline metrics at the top level, then every source (scalars, per-class, the probe curve)."""
    rows = results.read_collapse(ws, run_id)
    if rows.empty:
        raise StorageError(f"run {run_id} stored no neural-collapse metrics")
    out: dict = {"run_id": run_id, "sources": {}}
    for source, group in rows.groupby("source", sort=False):
        scalars = group[group["class_label"].isna()]
        entry: dict = {}
        if source == "probe":
            for metric, g in scalars.groupby("metric", sort=False):
                entry[metric] = [None if pd.isna(v) else float(v) for v in g.sort_values("epoch")["value"]]
            out["sources"]["probe_curve"] = entry
            continue
        entry = {m: (None if pd.isna(v) else float(v)) for m, v in zip(scalars["metric"], scalars["value"], strict=True)}
        entry["epoch"] = int(group["epoch"].iloc[0])
        per_class = group[group["class_label"].notna()]
        entry["per_class"] = {
            metric: {c: (None if pd.isna(v) else float(v)) for c, v in zip(g["class_label"], g["value"], strict=True)}
            for metric, g in per_class.groupby("metric", sort=False)
        }
        out["sources"][source] = entry
    for prefix in HEADLINE_ORDER:
        match = [s for s in out["sources"] if s.startswith(prefix) and s != "probe_curve"]
        if match:
            out["headline_source"] = match[0]
            out.update({m: out["sources"][match[0]].get(m) for m in HEADLINE_METRICS})
            break
    return out


def write_json(payload: dict, out: str | os.PathLike) -> Path:
    """``payload`` as indented JSON, written atomically (:func:`backend.storage.export.write_atomic`)."""
    return write_atomic(lambda: json.dumps(payload, indent=2, sort_keys=False).encode(), out,
                        example="collapse.json")
