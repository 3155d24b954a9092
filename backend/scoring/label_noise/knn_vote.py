"""kNN label voting on frozen embeddings: SimiFeat (Zhu, Song & Liu 2022, ICML, "Detecting
Corrupted Labels Without Training a Model to Predict").

The premise: samples close in a good feature space share their true label, so the labels of a
sample's k nearest neighbours (cosine similarity, k = 10 in the paper) vote on its own. No model
is trained. Two rules from the paper:

- **vote** (SimiFeat-V): flag a sample when the label most voted by its neighbours is not its
  given label (ties go to the given label). ``rule="majority"`` instead flags when fewer than half
  of the votes agree with the given label (the "plain 10-NN vote" anchor of the benchmark).
- **rank** (SimiFeat-R): score each sample by how strongly its neighbours agree with its given
  label, and flag, within each given class j, the ``n_j`` lowest-scoring samples, where ``n_j`` is
  the estimated number of wrong labels in class j. The paper estimates the noise transition
  matrix with HOC (Zhu et al. 2021); here ``n_j`` comes from confident learning's calibrated joint
  computed on the neighbour label distribution (which plays the role of ``pred_probs``), or is
  passed in by the caller.

Neighbours come from :func:`backend.scoring.knn.knn_search` (self excluded); these functions take
its ``(indices, similarities)`` so one search serves several scorers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from backend.scoring.class_columns import best_other, true_class
from backend.scoring.label_noise.confident_learning import compute_confident_joint

WEIGHTINGS = ("uniform", "similarity")
VOTE_RULES = ("plurality", "majority")


@dataclass(frozen=True)
class KnnVote:
    """Per-sample output of :func:`knn_vote` / :func:`knn_rank` (N samples, C classes).

    ``label_distribution`` (N, C): weighted share of neighbour votes per class, rows sum to 1.
    ``agreement`` (N,) in [0, 1]: share of votes for the given label; lower = more likely wrong.
    ``label_issue_score`` (N,) in [0, 1]: (max share of another label - agreement + 1) / 2, i.e.
    one minus the normalised margin of the votes; higher = more likely wrong.
    ``is_label_issue`` (N,) bool. ``suggested_label`` (N,) int: the most voted label other than
    the given one where flagged, else the given label.
    """

    label_distribution: np.ndarray
    agreement: np.ndarray
    label_issue_score: np.ndarray
    is_label_issue: np.ndarray
    suggested_label: np.ndarray


def neighbor_label_distribution(
    neighbor_indices: np.ndarray,
    neighbor_labels: np.ndarray,
    *,
    n_classes: int,
    neighbor_similarities: np.ndarray | None = None,
    weighting: str = "uniform",
) -> np.ndarray:
    """Share of neighbour votes per class, (N, C) float64, rows sum to 1.

    ``neighbor_indices`` (N, k) index into ``neighbor_labels`` (M,) ints in [0, C). With
    ``weighting="similarity"`` each vote weighs max(cosine similarity, 0) (a row whose weights are
    all zero falls back to uniform votes).
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"unknown weighting {weighting!r}; choose one of {', '.join(WEIGHTINGS)}")
    idx = np.asarray(neighbor_indices)
    labels = np.asarray(neighbor_labels)
    if idx.ndim != 2:
        raise ValueError(f"neighbor_indices must be (N, k), got shape {idx.shape}")
    n, k = idx.shape
    votes = labels[idx]
    if weighting == "uniform":
        weights = np.ones((n, k))
    else:
        if neighbor_similarities is None or np.shape(neighbor_similarities) != idx.shape:
            raise ValueError("weighting='similarity' needs neighbor_similarities of shape (N, k)")
        weights = np.clip(np.asarray(neighbor_similarities, dtype=np.float64), 0.0, None)
        weights[weights.sum(axis=1) <= 0] = 1.0
    dist = np.zeros((n, n_classes))
    np.add.at(dist, (np.repeat(np.arange(n), k), votes.ravel()), weights.ravel())
    return dist / dist.sum(axis=1, keepdims=True)


class _Margins(NamedTuple):
    agreement: np.ndarray  # (N,) vote share of the given label
    score: np.ndarray  # (N,) (best other share - agreement + 1) / 2, higher = worse
    other: np.ndarray  # (N,) the most voted other class


def _margins(given: np.ndarray, dist: np.ndarray) -> _Margins:
    agreement = true_class(dist, given)
    other_share, other = best_other(dist, given)
    return _Margins(agreement, (np.maximum(other_share, 0.0) - agreement + 1.0) / 2.0, other)  # no other class: share 0


def _summarise(given: np.ndarray, dist: np.ndarray, flags: np.ndarray, margins: _Margins | None = None) -> KnnVote:
    m = _margins(given, dist) if margins is None else margins
    return KnnVote(
        label_distribution=dist,
        agreement=m.agreement,
        label_issue_score=m.score,
        is_label_issue=flags,
        suggested_label=np.where(flags, m.other, given),
    )


def _votes(
    given_labels: np.ndarray,
    neighbor_indices: np.ndarray,
    n_classes: int | None,
    neighbor_similarities: np.ndarray | None,
    weighting: str,
) -> tuple[np.ndarray, int, np.ndarray]:
    """(given labels as int64, number of classes, neighbour label distribution (N, C))."""
    given = np.asarray(given_labels).astype(np.int64)
    c = int(given.max()) + 1 if n_classes is None else n_classes
    dist = neighbor_label_distribution(
        neighbor_indices, given, n_classes=c, neighbor_similarities=neighbor_similarities,
        weighting=weighting,
    )  # fmt: skip
    return given, c, dist


def knn_vote(
    given_labels: np.ndarray,
    neighbor_indices: np.ndarray,
    *,
    n_classes: int | None = None,
    neighbor_similarities: np.ndarray | None = None,
    weighting: str = "uniform",
    rule: str = "plurality",
) -> KnnVote:
    """SimiFeat-V: flag samples whose neighbours' vote disagrees with the given label.

    Parameters
    ----------
    given_labels
        (N,) ints in [0, C); ``neighbor_indices`` (N, k) index into them (self excluded).
    rule
        ``"plurality"`` (paper): flag when another label gets strictly more votes than the given
        one. ``"majority"``: flag when the given label gets less than half of the votes.
    """
    if rule not in VOTE_RULES:
        raise ValueError(f"unknown rule {rule!r}; choose one of {', '.join(VOTE_RULES)}")
    given, _, dist = _votes(given_labels, neighbor_indices, n_classes, neighbor_similarities, weighting)
    agreement = true_class(dist, given)
    tol = 1e-9
    if rule == "plurality":
        flags = best_other(dist, given)[0] > agreement + tol
    else:
        flags = agreement < 0.5 - tol
    return _summarise(given, dist, flags)


def knn_rank(
    given_labels: np.ndarray,
    neighbor_indices: np.ndarray,
    *,
    n_classes: int | None = None,
    neighbor_similarities: np.ndarray | None = None,
    weighting: str = "uniform",
    issues_per_class: np.ndarray | None = None,
) -> KnnVote:
    """SimiFeat-R: within each given class, flag the samples with the weakest neighbour support.

    ``issues_per_class`` (C,) ints: how many to flag per given class. Default: the off-diagonal
    row sums of confident learning's calibrated joint (Northcutt et al. 2021) computed with the
    neighbour label distribution as ``pred_probs``.

    Algorithm
    ---------
    1. Neighbour label distribution (uniform or similarity-weighted votes).
    2. Score = one minus the normalised vote margin (higher = worse); ties broken by index.
    3. In each class j, flag the ``issues_per_class[j]`` highest scores, never a sample whose
       given label is strictly the most voted.
    """
    given, c, dist = _votes(given_labels, neighbor_indices, n_classes, neighbor_similarities, weighting)
    if issues_per_class is None:
        joint, _ = compute_confident_joint(given, dist)
        issues_per_class = joint.sum(axis=1) - np.diagonal(joint)
    counts = np.asarray(issues_per_class, dtype=np.int64)
    margins = _margins(given, dist)
    score = margins.score
    flags = np.zeros(given.size, bool)
    for j in range(c):
        members = np.flatnonzero(given == j)
        if members.size == 0 or counts[j] <= 0:
            continue
        order = members[np.argsort(-score[members], kind="stable")]
        flags[order[: counts[j]]] = True
    flags &= score >= 0.5  # the given label is not strictly the most voted
    return _summarise(given, dist, flags, margins)
