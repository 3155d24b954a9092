"""D2 pruning: message passing over a kNN graph of the embeddings, balancing difficulty and
diversity.

Maharana, Yadav & Bansal 2024, "D2 Pruning: Message Passing for Balancing Diversity & Difficulty
in Data Pruning" (ICLR; arXiv 2310.07931).

Algorithm (per pool: one class under the per-class policies, everything with ``"none"``)
---------
1. Graph: each sample's k nearest neighbours (cosine kNN on the L2-normalised embeddings,
   ``backend.scoring.knn``); edge distance d_ij = ||v_i - v_j||_2 = sqrt(2 - 2 cos).
2. Forward message passing, one round: s_i <- s_i + sum_{j in N(i)} exp(-gamma_f d_ij) s_j, so a
   hard sample in a hard region outranks an isolated hard sample.
3. Reverse message passing while selecting: take the sample with the highest current score;
   every unselected neighbour j of it loses exp(-gamma_r d_ij) times the taken score, so its
   near-copies are demoted and the next picks come from other regions. Repeat until the budget
   is kept.

Choices the paper leaves to tuning, documented here: difficulty enters as its rank quantile in
the pool (scale-free and non-negative, so that the subtraction in step 3 always demotes);
k = 10, gamma_f = gamma_r = 1 on unit-norm embeddings (distances lie in [0, 2]); the
neighbours of step 3 are the taken sample's own k nearest (the directed kNN graph). Step 3 uses
a lazy max-heap: O(budget * k * log pool) Python operations. On the digits validation splits
(``bench/pruning.py --alternatives``) gamma = 3 or 6 (weaker messages) is closer to keep-hard and
better than gamma = 1 below removed 0.9, worse at 0.9; gamma stays 1, the paper's scale, because
no value is better everywhere (``registry.prune(..., options={"d2": {...}})`` takes others).
"""

from __future__ import annotations

import heapq

import numpy as np

from backend.scoring.knn import knn_search
from backend.scoring.pruning._common import check_embeddings, l2_normalize, rank_quantile


def forward_pass(score: np.ndarray, neighbors: np.ndarray, distances: np.ndarray, gamma: float) -> np.ndarray:
    """s_i + sum_j exp(-gamma d_ij) s_j over each row's neighbours: (N,) float64."""
    return score + (np.exp(-gamma * distances) * score[neighbors]).sum(axis=1)


def reverse_select(
    score: np.ndarray, neighbors: np.ndarray, distances: np.ndarray, budget: int, gamma: float
) -> np.ndarray:
    """Greedy picks with reverse messages (module docstring, step 3); ties go to the lower index.
    Returns the picked row indices in pick order."""
    s = np.asarray(score, dtype=np.float64).copy()
    taken = np.zeros(s.size, dtype=bool)
    heap = [(-v, i) for i, v in enumerate(s.tolist())]
    heapq.heapify(heap)
    weights = np.exp(-gamma * distances)
    picked: list[int] = []
    while len(picked) < budget:
        neg, i = heapq.heappop(heap)
        if taken[i] or -neg != s[i]:
            continue  # stale entry: the sample was taken or demoted since it was pushed
        taken[i] = True
        picked.append(i)
        for j, w in zip(neighbors[i].tolist(), weights[i].tolist(), strict=True):
            if not taken[j]:
                s[j] -= w * s[i]
                heapq.heappush(heap, (-s[j], j))
    return np.asarray(picked, dtype=np.int64)


def check_d2_parameters(*, k: int, gamma_forward: float, gamma_reverse: float) -> None:
    """ValueError unless k >= 1 and both gammas are finite and >= 0."""
    if not k >= 1:
        raise ValueError(f"k must be >= 1, got {k}")
    for name, gamma in (("gamma_forward", gamma_forward), ("gamma_reverse", gamma_reverse)):
        if not (np.isfinite(gamma) and gamma >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {gamma}")


def d2_select(
    difficulty: np.ndarray,
    candidates: np.ndarray,
    budget: int,
    *,
    embeddings: np.ndarray,
    k: int = 10,
    gamma_forward: float = 1.0,
    gamma_reverse: float = 1.0,
) -> np.ndarray:
    """Keep ``budget`` of ``candidates`` by D2 pruning (module docstring).

    ``difficulty`` (N,) higher = harder, ``embeddings`` (N, D); both indexed by ``candidates``.
    Returns the kept indices (a subset of ``candidates``).
    """
    check_d2_parameters(k=k, gamma_forward=gamma_forward, gamma_reverse=gamma_reverse)
    if budget >= candidates.size:
        return candidates.copy()
    x = l2_normalize(check_embeddings(embeddings)[candidates])
    score = rank_quantile(np.asarray(difficulty, dtype=np.float64)[candidates])
    if candidates.size < 2:
        return candidates[:budget].copy()
    neighbors, sims = knn_search(x, min(k, candidates.size - 1))
    distances = np.sqrt(np.clip(2.0 - 2.0 * sims.astype(np.float64), 0.0, None))
    updated = forward_pass(score, neighbors, distances, gamma_forward)
    return candidates[reverse_select(updated, neighbors, distances, budget, gamma_reverse)]
