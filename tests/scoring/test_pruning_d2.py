"""D2 pruning (Maharana et al. 2024) on constructed graphs with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from backend.scoring.pruning import registry
from backend.scoring.pruning.d2 import d2_select, forward_pass, reverse_select


def test_forward_pass_adds_weighted_neighbour_scores() -> None:
    score = np.array([1.0, 0.5, 0.2])
    neighbors = np.array([[1], [0], [0]])
    distances = np.array([[0.0], [1.0], [2.0]])
    got = forward_pass(score, neighbors, distances, gamma=1.0)
    np.testing.assert_allclose(got, [1.0 + 0.5, 0.5 + math.exp(-1.0), 0.2 + math.exp(-2.0)])


def test_reverse_messages_demote_near_copies() -> None:
    # 0 and 1 are copies (distance 0); 2 lies far away with a lower score
    score = np.array([1.0, 0.9, 0.8])
    neighbors = np.array([[1], [0], [0]])
    distances = np.array([[0.0], [0.0], [2.0]])
    np.testing.assert_array_equal(reverse_select(score, neighbors, distances, 2, gamma=1.0), [0, 2])
    # with no reverse damping (infinite gamma) it is a plain top-k
    far = np.full_like(distances, 1e9)
    np.testing.assert_array_equal(reverse_select(score, neighbors, far, 2, gamma=1.0), [0, 1])


def test_d2_keeps_both_regions_where_keep_hard_keeps_one() -> None:
    rng = np.random.default_rng(0)
    dense = np.array([1.0, 0.0, 0.0]) + 0.01 * rng.normal(size=(20, 3))  # 20 near-copies, hard
    sparse = np.array([0.0, 1.0, 0.0]) + 0.3 * rng.normal(size=(10, 3))  # 10 spread out, easier
    x = np.vstack([dense, sparse]).astype(np.float32)
    difficulty = np.concatenate([np.full(20, 1.0) + 0.01 * rng.random(20), 0.5 * rng.random(10)])
    pool = np.arange(30)
    kept = d2_select(difficulty, pool, 10, embeddings=x, k=5)
    assert kept.size == 10 and np.unique(kept).size == 10
    assert (kept >= 20).sum() >= 3  # the sparse region is represented
    top = np.argsort(-difficulty)[:10]
    assert (top >= 20).sum() == 0  # keep-hard takes only the near-copies


def test_d2_through_the_registry_keeps_exact_class_quotas() -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = (digits.data[:400] / 16).astype(np.float32), digits.target[:400]
    aum = np.random.default_rng(1).normal(size=y.size)
    kept = registry.prune("d2:aum", 0.7, labels=y, scores={"aum": aum}, embeddings=x, seed=3)
    assert kept.size == round(0.3 * y.size) and np.unique(kept).size == kept.size
    expected = {c: round(0.3 * n) for c, n in zip(*np.unique(y, return_counts=True), strict=True)}
    counts = dict(zip(*np.unique(y[kept], return_counts=True), strict=True))
    assert all(abs(counts[c] - expected[c]) <= 1 for c in expected)
    again = registry.prune("d2", 0.7, labels=y, scores={"aum": aum}, embeddings=x, seed=3)
    np.testing.assert_array_equal(kept, again)  # default score aum; deterministic


def test_d2_edge_cases_and_errors() -> None:
    x = np.eye(3, dtype=np.float32)
    d = np.array([0.1, 0.2, 0.3])
    np.testing.assert_array_equal(d2_select(d, np.arange(3), 5, embeddings=x), [0, 1, 2])
    with pytest.raises(ValueError, match="k must be"):
        d2_select(d, np.arange(3), 1, embeddings=x, k=0)
    with pytest.raises(ValueError, match="gamma"):
        d2_select(d, np.arange(3), 1, embeddings=x, gamma_reverse=-1)
    with pytest.raises(ValueError, match="needs the embeddings"):
        registry.prune("d2", 0.5, labels=np.array([0, 0, 1]), scores={"aum": d})
