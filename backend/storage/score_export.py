"""Exports of a scoring run: one row per sample with the verdict and every score, and the
neural-collapse metrics as JSON."""

from __future__ import annotations

import json
import os

import pandas as pd

from backend.storage import provenance, results, runs, schemas
from backend.storage.errors import StorageError
from backend.storage.export import Written, to_bytes, write_atomic, write_export
from backend.storage.export_paths import check_output
from backend.storage.subsets import subset_ids
from backend.storage.workspace import Workspace

#: Where the collapse export takes its headline numbers from, in order of preference: a user's
#: classifier, the probe's last epoch (both have a classifier, so nc3 / nc4 exist), the embeddings.
HEADLINE_ORDER = ("imported:", "probe_final", "embeddings")
HEADLINE_METRICS = ("nc1", "equinorm", "equiangularity", "max_angle", "etf_distance", "of_distance",
                    "nc3", "nc4", "equinorm_w", "equiangularity_w", "max_angle_w", "etf_distance_w",
                    "imbalance_ratio")


#: The per-sample neural-collapse distances a score run stores beside its scores (written by
#: ``backend.jobs.collapse_stage.sample_collapse_scores``): own class mean, nearest other, own / other.
NC_SAMPLE_SCORES = ("nc_own_distance", "nc_other_distance", "nc_distance_ratio")


def collapse_samples(ws: Workspace, run_id: str, limit: int | None = None) -> pd.DataFrame:
    """id, label, split, path and the :data:`NC_SAMPLE_SCORES` of a score run, largest own /
    nearest-other ratio first (the first ``limit`` rows when given); empty when the run stored
    none (runs made before them). Only those three scores are read and pivoted, in DuckDB (a run
    stores a dozen more per sample)."""
    import duckdb

    runs.require_done(ws, run_id)
    columns = ", ".join(f"max(value) FILTER (WHERE name = '{name}') AS {name}" for name in NC_SAMPLE_SCORES)
    con = duckdb.connect(":memory:")
    try:
        con.register("samples", ws.dataset("samples"))
        con.register("scores", ws.dataset("scores"))
        stored = {row[0] for row in con.sql(
            "SELECT DISTINCT name FROM scores WHERE run_id = $run AND name IN ('" + "', '".join(NC_SAMPLE_SCORES)
            + "')", params={"run": run_id}).fetchall()}
        if stored != set(NC_SAMPLE_SCORES):
            return pd.DataFrame(columns=["id", "label", "split", "path", *NC_SAMPLE_SCORES])
        frame = con.sql(
            f"SELECT s.id, s.label, s.split, s.path, {', '.join(NC_SAMPLE_SCORES)} FROM samples s JOIN "
            f"(SELECT id, {columns} FROM scores WHERE run_id = $run GROUP BY id) USING (id) "
            "ORDER BY (nc_distance_ratio IS NULL OR isnan(nc_distance_ratio)), nc_distance_ratio DESC, s.id "
            "LIMIT $limit",  # NULL: no limit
            params={"run": run_id, "limit": limit}).to_arrow_table().to_pandas()
    finally:
        con.close()
    return frame


#: The label-noise detectors' stored scores (``backend.scoring.label_noise.verdict.DETECTORS`` +
#: ``_score``): exported as ``<detector>_issue_score``. Other stored ``*_score`` names (the health
#: checks' ``outlier_score``, ``dark_score``, ...) keep their names.
DETECTOR_SCORES = ("confident_learning_score", "knn_vote_score", "aum_score")


def score_columns(stored: list[str], pruning_scores: list[str] | None) -> dict[str, str]:
    """{stored score name: export column}, without doubled suffixes.

    A score run stores pruning scores under their registry names (``aum``, ``el2n``; the run's
    config lists them as ``scorers``) and the label-noise detectors' scores already suffixed
    (``aum_score``, ``knn_vote_score``: the ``label_issues`` stage names them so). Suffixing every
    stored name made ``aum_score_score``; suffixing only the bare ones would give the pruning AUM
    and the AUM detector the same column. So: pruning score ``X`` -> ``X_score``; detector score
    ``D_score`` (:data:`DETECTOR_SCORES`) -> ``D_issue_score`` (how likely the label is wrong by detector D, as
    ``label_issue_score`` is for the verdict); anything else (``suggested_probability``, the
    per-sample collapse distances) keeps its name. ``pruning_scores`` None (runs recorded without
    their scorers): every name that does not end in ``_score`` and is not a collapse distance.
    """
    if pruning_scores is None:
        pruning_scores = [n for n in stored if not n.endswith("_score") and n not in NC_SAMPLE_SCORES
                          and n != "suggested_probability"]
    pruning = set(pruning_scores)
    columns = {}
    for name in stored:
        if name in pruning:
            columns[name] = f"{name}_score"
        elif name in DETECTOR_SCORES:
            columns[name] = name.removesuffix("_score") + "_issue_score"
        else:
            columns[name] = name
    if len(set(columns.values())) != len(columns):
        raise StorageError(f"two stored scores would share an export column: {columns}")
    return columns


#: :func:`scores_frame`'s leading columns: the samples' ...
SAMPLE_COLUMNS = ("id", "label", "split")
#: ... then the verdict's (``label_issues`` less its keys), then the scores.
VERDICT_COLUMNS = tuple(c for c in schemas.LABEL_ISSUES.columns if c not in ("run_id", "id"))


#: The id of the train sample a split leak copies, a text column beside ``is_split_leak`` (scores
#: are numbers, so the health stage keeps these ids in the run summary).
LEAK_SOURCE_COLUMN = "split_leak_source"


def leak_sources(summary: dict | None) -> dict[str, str]:
    """{leaking sample id: the train sample it is a copy of} from a score run's summary: its
    ``health.leak_sources`` (``backend.jobs.health_stage`` keeps the first 10,000); empty for a
    run without the health checks."""
    health = (summary or {}).get("health") or {}
    return {str(k): str(v) for k, v in (health.get("leak_sources") or {}).items()}


#: The health stage's group columns, stored as numbers 0..G-1 (a score is a number), exported as
#: the names the Duplicates page gives the same groups: ``<prefix>-<smallest member id>``.
GROUP_NAMES = {"duplicate_group": "exact", "near_duplicate_group": "near"}


def group_names(ids: pd.Series, groups: pd.Series, prefix: str) -> pd.Series:
    """``<prefix>-<the group's smallest id>`` for each sample in a group (``groups``: any group
    key, NaN for a sample alone, which gets None): a name that does not depend on the order the
    job saw the samples in. The scores export and ``backend.jobs.duplicates_job.duplicate_groups``
    (the Duplicates page) both name groups with it."""
    groups = pd.Series(groups.to_numpy(), index=ids.index)
    first = ids.astype(str).groupby(groups).transform("min")
    return (prefix + "-" + first).astype(object).where(groups.notna(), None)


def export_types(frame: pd.DataFrame) -> pd.DataFrame:
    """The health columns in the types their meaning has: every stored ``is_*`` score (a 0 / 1
    flag, NaN where the check cannot run) as a nullable boolean like ``is_label_issue``; the
    :data:`GROUP_NAMES` numbers as group names."""
    frame = frame.copy()
    for column in frame.columns:
        if column.startswith("is_") and column != "is_label_issue":
            values = frame[column]
            bad = values.notna() & ~values.isin([0, 1])
            if bad.any():
                raise StorageError(f"score {column!r} is not a 0 / 1 flag: sample {frame.loc[bad.idxmax(), 'id']} "
                                   f"has {values[bad].iloc[0]!r}")
            frame[column] = values.astype("boolean")
    for column, prefix in GROUP_NAMES.items():
        if column in frame.columns:
            frame[column] = group_names(frame["id"], frame[column], prefix)
    return frame


def scores_frame(ws: Workspace, run_id: str) -> pd.DataFrame:
    """id, label, split, label_issue_score, is_label_issue, suggested_label, detectors, then one
    column per stored score named by :func:`score_columns` (the health flags and groups typed by
    :func:`export_types`); with the health checks, :data:`LEAK_SOURCE_COLUMN` right after
    ``is_split_leak`` (empty where a sample leaks nothing)."""
    samples = ws.samples(columns=list(SAMPLE_COLUMNS))
    verdict = results.read_label_issues(ws, run_id)
    wide = results.read_scores(ws, run_id)
    stored = [c for c in wide.columns if c != "id"]
    run = runs.get_run(ws, run_id)
    wide = wide.rename(columns=score_columns(stored, run["config"].get("scorers")))
    frame = export_types(samples.merge(verdict, on="id", how="inner").merge(wide, on="id", how="left"))
    if "is_split_leak" in frame.columns:
        source = frame["id"].map(leak_sources(run["summary"])).astype(object)
        frame.insert(frame.columns.get_loc("is_split_leak") + 1, LEAK_SOURCE_COLUMN,
                     source.where(source.notna(), None))
    return frame.sort_values("id", kind="stable").reset_index(drop=True)


def scores_shape(ws: Workspace, run_id: str) -> tuple[int, int]:
    """(rows, columns) of :func:`scores_frame`, counted in DuckDB without building it."""
    import duckdb

    runs.require_done(ws, run_id)
    con = duckdb.connect(":memory:")
    try:
        con.register("samples", ws.dataset("samples"))
        con.register("label_issues", ws.dataset("label_issues"))
        con.register("scores", ws.dataset("scores"))
        n_rows = con.sql("SELECT count(*) FROM label_issues JOIN samples USING (id) WHERE run_id = ?",
                         params=[run_id]).fetchall()[0][0]
        n_scores, leaks = con.sql("SELECT count(DISTINCT name), count(*) FILTER (WHERE name = 'is_split_leak') "
                                  "FROM scores WHERE run_id = ?", params=[run_id]).fetchall()[0]
    finally:
        con.close()
    return int(n_rows), len(SAMPLE_COLUMNS) + len(VERDICT_COLUMNS) + int(n_scores) + (1 if leaks else 0)


def scores_export(ws: Workspace, run_id: str, fmt: str, *, subset: str | None = None
                  ) -> tuple[pd.DataFrame, dict]:
    """:func:`scores_frame` (of ``subset``'s samples when given) and its provenance record."""
    frame = scores_frame(ws, run_id)
    if subset is not None:
        frame = frame[frame["id"].isin(set(subset_ids(ws, subset)))].reset_index(drop=True)
    return frame, provenance.build(ws, what="scores", fmt=fmt, out=None, rows=len(frame), subset=subset,
                                   score_run=run_id)


def export_scores(ws: Workspace, run_id: str, fmt: str, out: str | os.PathLike, *,
                  subset: str | None = None, overwrite: bool = False) -> Written:
    """Write :func:`scores_frame` (of ``subset``'s samples when given) with its provenance record;
    existing files are replaced only with ``overwrite``."""
    frame, record = scores_export(ws, run_id, fmt, subset=subset)
    return write_export(frame, fmt, out, record, overwrite=overwrite)


def scores_download(ws: Workspace, run_id: str, fmt: str) -> bytes:
    """:func:`scores_frame` as ``fmt`` bytes (the app's download button; Parquet carries the record)."""
    frame, record = scores_export(ws, run_id, fmt)
    return to_bytes(frame, fmt, record)


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


def export_collapse(ws: Workspace, run_id: str, out: str | os.PathLike, *, overwrite: bool = False) -> Written:
    """:func:`collapse_summary` as indented JSON, written atomically
    (:func:`backend.storage.export.write_atomic`), with its provenance record beside it; existing
    files are replaced only with ``overwrite``."""
    payload = collapse_summary(ws, run_id)
    path = check_output(out, overwrite=overwrite, example="collapse.json")
    sidecar = check_output(provenance.sidecar_path(path, "json"), overwrite=overwrite)  # both before either is written
    write_atomic(lambda: json.dumps(payload, indent=2, sort_keys=False).encode(), path, example="collapse.json",
                 overwrite=overwrite)
    record = provenance.build(ws, what="collapse", fmt="json", out=path, rows=len(payload["sources"]),
                              score_run=run_id, headline_source=payload.get("headline_source"))
    provenance.write(record, sidecar, overwrite=overwrite)
    return Written(path, sidecar, record["rows"], record)
