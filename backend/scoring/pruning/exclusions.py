"""What a prune removes before its procedure ranks anything: flagged label issues, then
near-duplicates.

Why label issues first. Every hardness score ranks a mislabelled sample among the hardest:
its given label disagrees with what the model learns, so EL2N and the forgetting count are
high and AUM is low (Paul et al. 2021 sec. 5; Pleiss et al. 2020 use exactly that to find
them). Keep-hard pruning, and SIMS sampling below its coverage ramp, therefore keep them
first: on digits with 20 % of the training labels shifted c -> c + 1 the recommended default
kept a set that was 40 % mislabelled at half the data and scored below random pruning
(``bench/pruning.py --noisy``). The CCS hard cut-off (Zheng et al. 2023) answers this
blindly, dropping a fixed top fraction of the score whether or not it is noise; here the
label-noise verdict of the same score run (confident learning + kNN vote, cleaned once) says
which samples to drop, so on clean data almost nothing is dropped (2 of 1,257 digits training
samples) and on noisy data nearly all the noise is.

Evidence (``bench/pruning.py --noisy``, test split, 5 seeds): with 10 % / 30 % symmetric and 20 %
asymmetric noise the default scores 97.4-98.0 / 96.2-96.4 / 96.4-96.9 at removed 0.3-0.7,
against 87.6-95.3 / 49.5-85.1 / 54.0-80.2 without the exclusion and 94.6 / 91.6 / 85.5 trained on
all the noisy data. On clean digits (``--alternatives --only "label issues kept"``, validation, 30 paired runs)
keeping the flags instead moves accuracy +0.11 / +0.12 / -0.11 / -0.33 at 0.3 / 0.5 / 0.7 / 0.9
(standard errors 0.08-0.20): level within noise at 0.3-0.7, mixed at 0.9 (the test split moved
the other way there: -0.89 over 5 seeds, -0.30 over 20).

Choices (none of the papers covers combining them):

* Excluded samples count towards the removed fraction (the kept count is what the ratio says).
* When more samples are flagged than the ratio removes, the most suspicious go (highest
  ``label_issue_score``, ties by position) and the others stay candidates.
* Near-duplicates (SemDeDup, Abbas et al. 2023) take what budget the label issues leave; when
  they exceed it a seeded random draw of them is removed (SemDeDup keeps one sample of each
  near-duplicate group already, so any of the rest may go).
* A per-class minimum (``min:K``) outranks both: a class that would keep fewer than
  min(K, its size) candidates gets excluded members back, near-duplicates first, then its
  least suspicious flagged samples. (``balanced`` quotas are capped by what each class has left.)
* When the flags fill the whole budget the procedure has nothing left to choose: the kept set
  is everything unflagged, and ``RemovedFirst.n_flagged`` tells the caller (and the user) so.
* A curator's decisions come before all of this (:func:`decided_pool`): samples dropped by a
  decision leave the pool (counting as removed), samples marked ``keep`` are kept and take
  kept slots; flags and near-duplicates are then looked for among the other samples only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend.scoring.pruning.budgets import n_to_keep
from backend.scoring.pruning.procedures import _rng


@dataclass(frozen=True)
class RemovedFirst:
    """``mask`` (N,) bool of samples removed before the procedure runs (None = nothing), how
    many of them are label issues and near-duplicates, how many samples were flagged in all,
    and the ratio's removal ``budget``."""

    mask: np.ndarray | None
    n_label_issues: int
    n_duplicates: int
    n_flagged: int = 0
    budget: int = 0

    @property
    def fills_budget(self) -> bool:
        """True when nothing is left for the procedure to choose (every removal is an exclusion)."""
        return self.budget > 0 and self.n_label_issues + self.n_duplicates >= self.budget


def removed_first(
    n: int,
    ratio: float,
    *,
    label_issues: np.ndarray | None = None,
    label_issue_score: np.ndarray | None = None,
    duplicates: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    min_per_class: int = 0,
    seed: int = 0,
) -> RemovedFirst:
    """The samples to remove before ranking (module docstring), within the ratio's budget.

    ``label_issues`` (N,) bool flags with ``label_issue_score`` (N,) in [0, 1] (higher = more
    likely wrong); ``duplicates`` (N,) bool. Either may be None. ``labels`` (N,) and
    ``min_per_class`` (the ``min:K`` policy's K) keep every class at min(K, its size) candidates.
    """
    budget = n - n_to_keep(n, ratio)
    issues = _mask(label_issues, n, "label_issues")
    dups = _mask(duplicates, n, "duplicates")
    score = None
    if label_issue_score is not None:
        score = np.asarray(label_issue_score, dtype=np.float64)
        if score.shape != (n,):
            raise ValueError(f"label_issue_score must have shape ({n},), got {score.shape}")
    n_flagged = int(issues.sum()) if issues is not None else 0
    if not n_flagged and (dups is None or not dups.any()):
        return RemovedFirst(None, 0, 0, 0, budget)
    flagged = np.flatnonzero(issues) if issues is not None else np.empty(0, np.int64)
    if flagged.size > budget:
        if score is None:
            raise ValueError("label_issue_score is needed to choose among more flagged samples than the ratio removes")
        flagged = flagged[np.argsort(-score[flagged], kind="stable")[:budget]]
    mask = np.zeros(n, bool)
    mask[flagged] = True
    is_dup = np.zeros(n, bool)
    if dups is not None:
        spare = budget - flagged.size
        candidates = np.flatnonzero(dups & ~mask)
        if candidates.size > spare:
            candidates = _rng(seed, 7).choice(candidates, spare, replace=False)
        mask[candidates] = True
        is_dup[candidates] = True
    if min_per_class > 0 and labels is not None:
        _restore_class_minimums(mask, is_dup, np.asarray(labels), min_per_class, score)
    n_issues = int((mask & ~is_dup).sum())
    return RemovedFirst(mask, n_issues, int((mask & is_dup).sum()), n_flagged, budget)


def _restore_class_minimums(mask: np.ndarray, is_dup: np.ndarray, labels: np.ndarray, minimum: int,
                            score: np.ndarray | None) -> None:
    """Give excluded members back (in ``mask``, in place) to every class left with fewer than
    min(``minimum``, class size) candidates: near-duplicates first, then the least suspicious."""
    if labels.shape != mask.shape:
        raise ValueError(f"labels must have shape {mask.shape}, got {labels.shape}")
    suspicion = np.where(is_dup, -1.0, score if score is not None else 0.0)
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        deficit = min(minimum, members.size) - int((~mask[members]).sum())
        if deficit > 0:
            excluded = members[mask[members]]
            back = excluded[np.argsort(suspicion[excluded], kind="stable")[:deficit]]
            mask[back] = False


def _mask(values: np.ndarray | None, n: int, name: str) -> np.ndarray | None:
    if values is None:
        return None
    mask = np.asarray(values, dtype=bool)
    if mask.shape != (n,):
        raise ValueError(f"{name} must be a ({n},) bool mask, got shape {mask.shape}")
    return mask


@dataclass(frozen=True)
class DecidedPool:
    """How a curator's decisions split a prune's pool of N rows (:func:`decided_pool`).

    ``free`` (M,) int64: the rows the procedure chooses among (neither dropped nor pinned);
    ``pinned`` (P,) int64: rows kept whatever the procedure does; ``n_dropped``: rows left out
    by ``drop`` decisions (they count as removed); ``n_keep``: what the ratio keeps of all N;
    ``n_free_keep``: how many of ``free`` the procedure keeps (0: it has nothing to choose).
    """

    free: np.ndarray
    pinned: np.ndarray
    n_dropped: int
    n_keep: int
    n_free_keep: int

    @property
    def free_ratio(self) -> float:
        """The fraction of ``free`` the procedure removes, such that
        ``n_to_keep(free.size, free_ratio) == n_free_keep`` (only meaningful when it keeps >= 1)."""
        m = self.free.size
        return (m - self.n_free_keep) / m if m else 0.0

    @property
    def pinned_fill_budget(self) -> bool:
        """True when the pinned rows alone use (or exceed) every kept slot."""
        return self.pinned.size > 0 and self.n_free_keep == 0


def n_kept_after_decisions(n: int, ratio: float, n_dropped: int, n_pinned: int) -> int:
    """How many of ``n`` rows a prune at ``ratio`` keeps when ``n_dropped`` are dropped and
    ``n_pinned`` pinned (:func:`decided_pool`, steps 1-3, in counts): the target n_keep, at most
    the rows not dropped, and never fewer than the pinned."""
    if n < 1:
        return 0
    return max(min(n_to_keep(n, ratio), n - n_dropped), n_pinned)


def decided_pool(n: int, ratio: float, *, dropped: np.ndarray | None = None,
                 pinned: np.ndarray | None = None) -> DecidedPool:
    """Apply a curator's decisions to a prune of ``n`` rows at ``ratio`` (fraction removed).

    ``dropped`` and ``pinned`` are (N,) bool masks (None = none); a row cannot be both.

    Algorithm (decisions outrank procedures):
    1. n_keep = round(n (1 - ratio)) over the whole pool: dropped rows count as removed, so
       the ratio means what it says whatever was dropped.
    2. Dropped rows leave the pool. If fewer rows remain than n_keep, all of them are kept.
    3. Pinned rows are kept and take kept slots: the procedure keeps
       max(0, min(n_keep, n - n_dropped) - n_pinned) of the free rows. More pinned rows than
       slots are all kept (a prune never removes a ``keep`` decision), and the procedure chooses
       nothing.
    The procedure then runs on ``free`` alone, at :attr:`DecidedPool.free_ratio`, with its own
    per-class quotas over the free rows (pinned rows are on top of them, as the rows removed
    first are beside them).
    """
    n_keep = n_to_keep(n, ratio)
    drop = _mask(dropped, n, "dropped")
    pin = _mask(pinned, n, "pinned")
    drop = np.zeros(n, bool) if drop is None else drop
    pin = np.zeros(n, bool) if pin is None else pin
    both = np.flatnonzero(drop & pin)
    if both.size:
        raise ValueError(f"{both.size} rows are both dropped and pinned (e.g. row {both[0]}); a sample has one decision")
    free = np.flatnonzero(~drop & ~pin).astype(np.int64)
    pinned_rows = np.flatnonzero(pin).astype(np.int64)
    n_dropped = int(drop.sum())
    n_free_keep = n_kept_after_decisions(n, ratio, n_dropped, pinned_rows.size) - pinned_rows.size
    pool = DecidedPool(free, pinned_rows, n_dropped, n_keep, n_free_keep)
    if n_free_keep and n_to_keep(free.size, pool.free_ratio) != n_free_keep:
        raise RuntimeError(f"free ratio {pool.free_ratio!r} keeps {n_to_keep(free.size, pool.free_ratio)} "
                           f"of {free.size}, not {n_free_keep}")
    return pool
