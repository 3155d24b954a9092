"""The Prune page's data access: pruning procedures, the pool a prune chooses from, outcomes.

Same caching rules as :mod:`app.data` (results cached under the Lance versions they read).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from app import jobs_data
from app.data import cached_reader, finished_runs, open_workspace, run_query
from backend.jobs import prune_job
from backend.jobs.job_manager import Job
from backend.storage import results, runs, subsets


@cached_reader("scores", "samples", max_entries=4)
def prune_pool(root: str, score_run: str) -> pd.DataFrame:
    """id, label, split and every score of the samples ``score_run`` scored (what a prune
    chooses from)."""
    ws = open_workspace(root)
    scored = results.read_scores(ws, score_run)
    return ws.samples(columns=["id", "label", "split"]).merge(scored, on="id")


@dataclass(frozen=True)
class PoolSummary:
    """What the Prune page's settings need of a pool (:func:`prune_pool`), counted in DuckDB so the
    page never copies the pool's rows: samples per split (``None``: no split) and the scores with
    a value for every sample of the pool (``stored``: every score name the run stored)."""

    n_by_split: dict[str | None, int]
    scores: tuple[str, ...]
    stored: tuple[str, ...] = ()

    @property
    def n(self) -> int:
        return sum(self.n_by_split.values())

    def count(self, split: str | None) -> int:
        """Samples of the pool in ``split`` (all of them with ``None``)."""
        return self.n if split is None else self.n_by_split.get(split, 0)


@cached_reader("scores", "samples", "decisions", max_entries=8)
def decided_in_pool(root: str, score_run: str, split: str | None) -> tuple[int, int]:
    """(dropped, pinned): the samples of ``score_run``'s pool (of ``split`` when given) a decision
    drops or keeps (pins), counted in DuckDB over the decided samples only."""
    from app import curation_data

    states = curation_data.states(root)
    decided = states[states["decision"].isin(["dropped", "kept"])]
    if decided.empty:
        return 0, 0
    found = run_query(root, lambda q: q.sql(
        "SELECT id, split FROM samples WHERE id IN (SELECT unnest($ids)) "
        "AND id IN (SELECT id FROM scores WHERE run_id = $run)",
        {"ids": decided["id"].astype(str).tolist(), "run": score_run}))
    if split is not None:
        found = found[found["split"] == split]
    decision = decided.set_index("id")["decision"].reindex(found["id"].astype(str))
    return int((decision == "dropped").sum()), int((decision == "kept").sum())


@cached_reader("scores", "samples", max_entries=8)
def pool_summary(root: str, score_run: str) -> PoolSummary:
    """:class:`PoolSummary` of ``score_run``'s pool (what :func:`prune_pool` would hold)."""
    runs.require_done(open_workspace(root), score_run)
    splits = run_query(root, lambda q: q.sql(
        "SELECT split, count(*) AS n FROM samples WHERE id IN (SELECT id FROM scores WHERE run_id = ?) "
        "GROUP BY split", [score_run]))
    n_by_split = {None if pd.isna(s) else str(s): int(n) for s, n in zip(splits["split"], splits["n"], strict=True)}
    counted = run_query(root, lambda q: q.sql(
        "SELECT name, count(*) FILTER (WHERE value IS NOT NULL AND NOT isnan(value)) AS n FROM scores "
        "WHERE run_id = ? AND id IN (SELECT id FROM samples) GROUP BY name ORDER BY name", [score_run]))
    total = sum(n_by_split.values())
    full = tuple(str(name) for name, n in zip(counted["name"], counted["n"], strict=True) if int(n) == total)
    return PoolSummary(n_by_split, full, tuple(str(name) for name in counted["name"]))


@dataclass(frozen=True)
class PruneDone:
    """What the Prune page keeps of a finished prune (``prune_job.PruneResult`` plus context)."""

    root: str
    run_id: str
    subset: str
    method: str
    n_kept: int
    n_removed: int
    score_run: str
    split: str | None
    n_label_issues_removed: int = 0
    n_duplicates_removed: int = 0
    label_issues: str = "exclude"  # or "keep": the box was unticked
    verdict_missing: bool = False
    exclusions_fill_budget: bool = False
    n_pinned: int = 0  # kept by `keep` decisions
    n_dropped_by_decision: int = 0  # left out by `drop` decisions


def run_prune(
    root: str,
    *,
    name: str,
    ratio: float,
    method: str | None,
    per_class: str,
    seed: int,
    split: str | None,
    dedup: bool,
    score_run: str,
    overwrite: bool,
    options: tuple[tuple[str, str], ...] = (),
    label_issues: str = "exclude",
) -> PruneDone:
    """Run ``prune_job.prune`` in this process; raises ``StorageError`` / ``ValueError`` unchanged.
    ``options``: the procedure's parameters as (key, text value) pairs (``--option KEY=VALUE``);
    ``label_issues``: ``"exclude"`` removes the score run's flagged samples first, ``"keep"`` does
    not (``--label-issues``)."""
    result = prune_job.prune(
        open_workspace(root),
        name=name,
        ratio=ratio,
        method=method,
        per_class=per_class,
        seed=seed,
        split=split,
        dedup=dedup,
        score_run=score_run,
        overwrite=overwrite,
        method_options=dict(options),
        label_issues=label_issues,
    )
    return PruneDone(
        root=root,
        run_id=result.run_id,
        subset=result.subset,
        method=result.method,
        n_kept=result.n_kept,
        n_removed=result.n_removed,
        score_run=score_run,
        split=split,
        n_label_issues_removed=result.n_label_issues_removed,
        n_duplicates_removed=result.n_duplicates_removed,
        label_issues=label_issues,
        verdict_missing=result.verdict_missing,
        exclusions_fill_budget=result.exclusions_fill_budget,
        n_pinned=result.n_pinned,
        n_dropped_by_decision=result.n_dropped_by_decision,
    )


def prune_outcome(root: str, done: PruneDone) -> pd.DataFrame:
    """The pool of a prune (its split only) with a ``kept`` column and every score."""
    return _prune_outcome(root, done.score_run, done.subset, done.split)


@cached_reader(prune_pool, "subsets", max_entries=4)
def _prune_outcome(root: str, score_run: str, subset: str, split: str | None) -> pd.DataFrame:
    pool = prune_pool(root, score_run)
    if split:
        pool = pool[pool["split"] == split]
    kept = set(subsets.subset_ids(open_workspace(root), subset))
    return pool.assign(kept=pool["id"].isin(kept)).reset_index(drop=True)


def run_evaluation(root: str, subset: str) -> Job:
    """Start ``thresher evaluate --subset`` as a job (it trains probes, in a process of its own
    that goes on when the page is left); the evaluate run it records shows once it is done."""
    return jobs_data.start(root, "evaluate", {"subset": subset})


def latest_evaluation(root: str, subset: str, saved: pd.DataFrame) -> tuple[pd.Series | None, bool]:
    """The newest finished evaluate run of ``subset`` (its row of ``runs.list_runs``) or None,
    and whether it evaluated the subset as saved now (False once the subset was saved again,
    e.g. a prune that replaced it); ``saved`` is :func:`app.data.subset_list`, as the page read it."""
    listed = finished_runs(root, "evaluate")
    mine = listed[[summary.get("subset") == subset for summary in listed["summary"]]]
    if mine.empty:
        return None, False
    saved_at = saved.loc[saved["name"] == subset, "created_at"]
    current = not saved_at.empty and str(saved_at.iloc[0]) == mine.iloc[0]["summary"].get("subset_saved_at")
    return mine.iloc[0], current
