"""The prune job: a named subset of kept samples from a scoring run (``thresher prune``).

``ratio`` is the fraction REMOVED everywhere (0.3 keeps 70%).

Decisions outrank the procedure (:func:`backend.scoring.pruning.exclusions.decided_pool`): a
sample whose current decision is ``drop`` is in no pruned subset (it counts as removed), one
marked ``keep`` is always kept (even when flagged or a near-duplicate; it takes a kept slot).
Labels are the current ones, after ``relabel`` decisions: per-class quotas, ``min:K`` and the
procedures' class strata count a relabeled sample in its new class. The stored scores stay those
of the score run (computed under the labels of that time; rerun ``thresher score`` to score
under the new ones), and a relabeled sample's label-issue flag, which was about its old label,
no longer removes it first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from backend.config import LABEL_ISSUE_CHOICES
from backend.jobs.dataset import load_dataset, split_rows
from backend.jobs.tracking import recorded_run
from backend.scoring.pruning import options as prune_options
from backend.scoring.pruning import registry
from backend.scoring.pruning.budgets import check_ratio, n_to_keep, parse_policy
from backend.scoring.pruning.exclusions import (
    RemovedFirst,
    decided_pool,
    n_kept_after_decisions,
    removed_first,
)
from backend.storage import decisions, results, runs, subsets
from backend.storage.errors import NotFoundError, StorageError
from backend.storage.workspace import Workspace

log = logging.getLogger(__name__)


@dataclass
class PruneResult:
    run_id: str
    subset: str
    method: str
    n_kept: int
    n_removed: int
    n_label_issues_removed: int = 0
    n_duplicates_removed: int = 0
    n_label_issues_flagged: int = 0  # in the pool, by the score run's verdict
    verdict_missing: bool = False  # label issues were to be excluded but the score run stored none
    exclusions_fill_budget: bool = False  # every removal was an exclusion: the method chose nothing
    n_pinned: int = 0  # kept by `keep` decisions, whatever the method chose
    n_dropped_by_decision: int = 0  # left out by `drop` decisions (counted as removed)
    n_relabeled: int = 0  # pruned under their label after `relabel` decisions
    pinned_fill_budget: bool = False  # the pinned samples use every kept slot: the method chose nothing


def latest_score_run(ws: Workspace) -> dict:
    run = runs.latest_run(ws, "score")
    if run is None:
        raise NotFoundError(f"no finished score run in {ws.root}; run `thresher score --workspace {ws.root}` first")
    return run


#: The score run's duplicate groups (``backend.jobs.health_stage``): the ones the Duplicates page shows.
GROUP_SCORES = ("near_duplicate_group", "duplicate_group")


def duplicate_rows(keys: pd.Series, pinned: set[str]) -> np.ndarray:
    """(N,) bool: the samples of ``keys`` (index: id; value: a group key, NaN when alone) that
    ``--dedup`` removes. One sample per group stays: in a group of ``pinned`` (the keys of the
    groups that hold a sample kept by a decision, itself not among ``keys``) that one, so all of
    ``keys`` in it go; else the smallest id."""
    member = keys.notna().to_numpy()
    out = np.zeros(len(keys), dtype=bool)
    if not member.any():
        return out
    frame = pd.DataFrame({"id": keys.index.astype(str), "key": keys.to_numpy()})[member]
    first = frame.groupby("key")["id"].transform("min")
    out[np.flatnonzero(member)] = (frame["id"] != first).to_numpy() | frame["key"].isin(pinned).to_numpy()
    return out


def _duplicates(scores: pd.DataFrame, ids: np.ndarray, pool: slice | np.ndarray, pinned_ids: list[str],
                score_arrays: dict[str, np.ndarray]) -> np.ndarray:
    """``--dedup``'s samples to remove first, over ``pool``: every member of a duplicate group but
    one (:func:`duplicate_rows`), the groups of the score run's dataset-health stage (exact copies
    and near duplicates under the rule chosen on the data), so the prune removes what the
    Duplicates page and the Overview count. A run without them (made before the health stage)
    falls back to its SemDeDup score (Abbas et al. 2023), which on tightly packed embeddings
    marks far more than copies (80 % of the digits' pixels at its cosine of 0.95)."""
    if not set(GROUP_SCORES) <= set(scores.columns):
        if "semdedup" not in score_arrays:
            raise StorageError("--dedup needs the score run's duplicate groups; rerun `thresher score`")
        log.warning("this score run has no duplicate groups (made before the dataset-health checks): "
                    "--dedup uses its SemDeDup score instead; rerun `thresher score` for the groups")
        return score_arrays["semdedup"] > 0.5
    near = scores["near_duplicate_group"].to_numpy()
    exact = scores["duplicate_group"].to_numpy()
    # one key per sample: its near group (exact copies are each other's nearest, so they share one)
    key = np.where(~np.isnan(near), np.char.add("n", near.astype(str)),
                   np.where(~np.isnan(exact), np.char.add("e", exact.astype(str)), ""))
    keys = pd.Series(key, index=ids).replace("", np.nan)
    pinned = set(keys.reindex(pinned_ids).dropna())  # the groups a keep decision already holds
    return duplicate_rows(keys.iloc[pool], pinned)


def prune(ws: Workspace, *, name: str, ratio: float, method: str | None = None, per_class: str = "proportional",
          seed: int = 0, split: str | None = None, dedup: bool = False, score_run: str | None = None,
          overwrite: bool = False, method_options: dict[str, str] | None = None,
          label_issues: str = "exclude") -> PruneResult:
    """Keep ``1 - ratio`` of the samples (of ``split`` when given) by ``method`` over the scores of
    ``score_run`` (default: the latest), and save them as subset ``name``.

    With no ``method`` the recommended default for this ratio is used
    (:func:`backend.scoring.pruning.registry.recommended_default`). ``label_issues="exclude"``
    (default) removes the samples the score run's label-noise verdict flags first, ``"keep"``
    leaves them to the method; ``dedup`` removes the duplicates of the score run's duplicate
    groups first, one kept per group (:func:`_duplicates`); both count towards the ratio
    (:mod:`backend.scoring.pruning.exclusions`).
    ``method_options`` are the procedure's parameters as
    ``KEY=VALUE`` text (:func:`backend.scoring.pruning.options.method_options`), checked before
    anything is read or written. The curator's decisions outrank all of it (module docstring); the
    run's summary records ``n_pinned``, ``n_dropped_by_decision``, ``n_relabeled`` and
    ``decisions_seq`` (the log's last entry the prune saw).
    """
    check_ratio(ratio)
    name = subsets.check_subset_name(name)
    if label_issues not in LABEL_ISSUE_CHOICES:
        raise ValueError(f"label_issues must be one of {', '.join(LABEL_ISSUE_CHOICES)}, got {label_issues!r}")
    if name in subsets.subset_names(ws) and not overwrite:
        raise StorageError(f"a subset named {name!r} exists; choose another --name or pass --overwrite")
    options: dict = {}
    if method is None:
        recipe = registry.recommended_default(ratio)
        method, options = recipe.name, recipe.options
    registry.parse_method(method)  # ValueError naming the known methods
    if method_options:
        options = {**options, **prune_options.method_options(method, method_options)}
    source = runs.get_run(ws, score_run) if score_run else latest_score_run(ws)
    data = load_dataset(ws, source["embedding_key"], current_labels=False)  # relabels applied below
    log_entries = decisions.read_log(ws)
    states = decisions.replay(log_entries)
    labels, relabeled = _current_labels(data.ids, data.labels, data.classes, states)
    scores = results.read_scores(ws, source["run_id"]).set_index("id").reindex(data.ids)
    pool: slice | np.ndarray = slice(None)  # every sample: views, not copies (2 GB at 1M x 512)
    n_pool = len(data.ids)
    if split:
        pool = split_rows(ws, data.ids, split)
        if not pool.size:
            raise StorageError(f"no sample has split {split!r}")
        n_pool = pool.size
    n_relabeled = int(relabeled[pool].sum())
    status = pd.Series(data.ids[pool]).map(states.set_index("id")["decision"]).to_numpy()
    decided = decided_pool(n_pool, ratio, dropped=status == "dropped", pinned=status == "kept")
    if decided.n_dropped == n_pool:
        raise StorageError(f"every one of the {n_pool} samples to prune is dropped by a decision: nothing to keep")
    method_ratio, pinned_ids = ratio, []
    if decided.n_dropped or decided.pinned.size:  # the method sees the undecided samples only
        rows = np.arange(len(data.ids))[pool]
        pinned_ids = data.ids[rows[decided.pinned]].tolist()
        pool, method_ratio = rows[decided.free], decided.free_ratio
    score_arrays = {c: scores[c].to_numpy()[pool] for c in scores.columns if scores[c].notna().all()}
    inputs = registry.ScoreInputs(labels=labels[pool], embeddings=data.unit[pool], norms=data.norms[pool])
    duplicates = None
    if dedup:
        duplicates = _duplicates(scores, data.ids, pool, pinned_ids, score_arrays)
    flags, flag_scores = None, None
    if label_issues == "exclude":
        flags, flag_scores = _label_issues(ws, source["run_id"], data.ids, pool)
        if flags is not None:
            flags = flags & ~relabeled[pool]  # the flag was about the label a curator has replaced
    n_free = n_pool if isinstance(pool, slice) else pool.size
    first = RemovedFirst(None, 0, 0)
    if decided.n_free_keep:
        first = removed_first(n_free, method_ratio, label_issues=flags, label_issue_score=flag_scores,
                              duplicates=duplicates, labels=labels[pool], min_per_class=parse_policy(per_class)[1],
                              seed=seed)
    verdict_missing = label_issues == "exclude" and flags is None
    if first.fills_budget:
        log.warning("the samples removed first (%d label issues, %d near-duplicates) fill the ratio's budget: "
                    "%s chooses nothing; the subset is every other sample", first.n_label_issues,
                    first.n_duplicates, method)
    if decided.pinned_fill_budget:
        log.warning("the %d samples pinned by keep decisions fill the ratio's budget (%d kept): %s chooses nothing",
                    decided.pinned.size, decided.n_keep, method)
    config = {"method": method, "ratio": ratio, "per_class": per_class, "seed": seed, "split": split,
              "dedup": dedup, "label_issues": label_issues, "score_run": source["run_id"], "options": options,
              "subset": name}
    with recorded_run(ws, "prune", config, embedding_key=data.embedding_key, seed=seed) as run:
        chosen: list[str] = []
        if decided.n_free_keep:
            kept = registry.prune(method, method_ratio, labels=labels[pool], scores=score_arrays, inputs=inputs,
                                  per_class=per_class, seed=seed, exclude=first.mask, options=options)
            chosen = data.ids[pool][kept].tolist()
        kept_ids = sorted([*pinned_ids, *chosen])
        subsets.save_subset(ws, name, kept_ids, origin="prune", run_id=run.run_id, overwrite=overwrite)
        run.summary = {"n_pool": n_pool, "n_kept": len(kept_ids), "n_removed": n_pool - len(kept_ids),
                       "n_label_issues_flagged": first.n_flagged, "n_label_issues_removed": first.n_label_issues,
                       "n_duplicates_removed": first.n_duplicates, "subset": name, "method": method,
                       "label_issue_verdict": "missing" if verdict_missing else "used" if flags is not None
                       else "not used", "exclusions_fill_budget": first.fills_budget,
                       "n_pinned": int(decided.pinned.size), "n_dropped_by_decision": decided.n_dropped,
                       "n_relabeled": n_relabeled, "pinned_fill_budget": decided.pinned_fill_budget,
                       "decisions_seq": int(log_entries["seq"].max()) if len(log_entries) else 0}
    return PruneResult(run.run_id, name, method, len(kept_ids), n_pool - len(kept_ids), first.n_label_issues,
                       first.n_duplicates, first.n_flagged, verdict_missing, first.fills_budget,
                       int(decided.pinned.size), decided.n_dropped, n_relabeled, decided.pinned_fill_budget)


def _current_labels(ids: np.ndarray, labels: np.ndarray, classes: list[str], states: pd.DataFrame
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Class indices after ``relabel`` decisions, and the (N,) mask of relabeled samples. A class
    only relabeled samples have (no embedded sample was ingested with it) is added to ``classes``."""
    relabels = states.dropna(subset=["current_label"]).set_index("id")["current_label"]
    if relabels.empty:
        return labels, np.zeros(len(ids), bool)
    current = pd.Series(ids).map(relabels)
    relabeled = current.notna().to_numpy()
    if not relabeled.any():
        return labels, relabeled
    classes = list(classes)
    for label in sorted(set(current[relabeled]) - set(classes)):
        classes.append(label)
    index = {c: k for k, c in enumerate(classes)}
    out = labels.copy()
    out[relabeled] = [index[c] for c in current[relabeled]]
    return out, relabeled


def _label_issues(ws: Workspace, run_id: str, ids: np.ndarray, pool: slice | np.ndarray
                  ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The score run's label-issue flags and scores for the pool's rows (None when the run
    stored no verdict, e.g. one made before verdicts were stored)."""
    verdict = results.read_label_issues(ws, run_id)
    if verdict.empty:
        log.warning("score run %s stored no label-issue verdict: nothing flagged to remove first", run_id)
        return None, None
    verdict = verdict.set_index("id").reindex(ids[pool])
    flags = verdict["is_label_issue"].fillna(False).to_numpy(bool)
    return flags, verdict["label_issue_score"].fillna(0.0).to_numpy(np.float64)


def kept_count(n: int, ratio: float) -> int:
    """How many of ``n`` samples a prune at ``ratio`` (fraction removed) keeps; 0 when n < 1."""
    return 0 if n < 1 else n_to_keep(n, ratio)


#: How many samples a prune keeps given the pool's dropped and pinned counts (the Prune page's
#: preview; the app does not import the scorers).
kept_after_decisions = n_kept_after_decisions


def method_names() -> list[str]:
    """Registered pruning procedures (what ``--method`` and the app's Prune page offer)."""
    return sorted(registry.METHODS)


def score_names() -> list[str]:
    return sorted(registry.SCORES)


def recommended_method(ratio: float) -> str:
    """The default recipe's name for ``ratio`` (fraction removed), e.g. ``sims:ensemble``."""
    return registry.recommended_default(ratio).name


def default_score(method: str) -> str | None:
    """The score ``method`` runs on when none is named (``None`` for score-free methods)."""
    return registry.parse_method(method)[1]


def method_parameters(name: str) -> dict:
    """The procedure's settable parameters and their defaults (``--option``; the app's expander)."""
    return prune_options.method_parameters(name)


def describe_method(name: str) -> str:
    spec, score = registry.parse_method(name)
    paper = f" ({spec.paper})" if spec.paper else ""
    return f"{spec.description}{paper}" + (f"; score: {score}" if score else "")
