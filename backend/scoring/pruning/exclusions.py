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
(standard errors 0.08-0.20): level within noise except at 0.9, where the exclusion helps.

Choices (none of the papers covers combining them):

* Excluded samples count towards the removed fraction (the kept count is what the ratio says).
* When more samples are flagged than the ratio removes, the most suspicious go (highest
  ``label_issue_score``, ties by position) and the others stay candidates.
* Near-duplicates (SemDeDup, Abbas et al. 2023) take what budget the label issues leave; when
  they exceed it a seeded random draw of them is removed (SemDeDup keeps one sample of each
  near-duplicate group already, so any of the rest may go).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend.scoring.pruning.budgets import n_to_keep


@dataclass(frozen=True)
class RemovedFirst:
    """``mask`` (N,) bool of samples removed before the procedure runs (None = nothing), and how
    many of them are label issues and near-duplicates."""

    mask: np.ndarray | None
    n_label_issues: int
    n_duplicates: int


def removed_first(
    n: int,
    ratio: float,
    *,
    label_issues: np.ndarray | None = None,
    label_issue_score: np.ndarray | None = None,
    duplicates: np.ndarray | None = None,
    seed: int = 0,
) -> RemovedFirst:
    """The samples to remove before ranking (module docstring), within the ratio's budget.

    ``label_issues`` (N,) bool flags with ``label_issue_score`` (N,) in [0, 1] (higher = more
    likely wrong); ``duplicates`` (N,) bool. Either may be None.
    """
    budget = n - n_to_keep(n, ratio)
    issues = _mask(label_issues, n, "label_issues")
    dups = _mask(duplicates, n, "duplicates")
    if (issues is None or not issues.any()) and (dups is None or not dups.any()):
        return RemovedFirst(None, 0, 0)
    flagged = np.flatnonzero(issues) if issues is not None else np.empty(0, np.int64)
    if flagged.size > budget:
        if label_issue_score is None:
            raise ValueError("label_issue_score is needed to choose among more flagged samples than the ratio removes")
        score = np.asarray(label_issue_score, dtype=np.float64)
        if score.shape != (n,):
            raise ValueError(f"label_issue_score must have shape ({n},), got {score.shape}")
        flagged = flagged[np.argsort(-score[flagged], kind="stable")[:budget]]
    mask = np.zeros(n, bool)
    mask[flagged] = True
    n_dups = 0
    if dups is not None:
        spare = budget - flagged.size
        candidates = np.flatnonzero(dups & ~mask)
        if candidates.size > spare:
            candidates = np.random.default_rng([int(seed) & 0xFFFFFFFF, 7]).choice(candidates, spare, replace=False)
        mask[candidates] = True
        n_dups = int(candidates.size)
    return RemovedFirst(mask, int(flagged.size), n_dups)


def _mask(values: np.ndarray | None, n: int, name: str) -> np.ndarray | None:
    if values is None:
        return None
    mask = np.asarray(values, dtype=bool)
    if mask.shape != (n,):
        raise ValueError(f"{name} must be a ({n},) bool mask, got shape {mask.shape}")
    return mask
