"""SimiFeat kNN label voting on constructed neighbourhoods with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from backend.scoring.knn import knn_search
from backend.scoring.label_noise.knn_vote import knn_rank, knn_vote, neighbor_label_distribution


def _two_blobs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    labels = np.repeat([0, 1], 30)
    x = centers[labels] + 0.05 * rng.standard_normal((60, 3))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


def test_vote_flags_the_planted_error_and_suggests_its_cluster() -> None:
    x, labels = _two_blobs()
    noisy = labels.copy()
    noisy[[3, 40]] = [1, 0]
    idx, sims = knn_search(x, 10, method="exact")
    for result in (
        knn_vote(noisy, idx, n_classes=2),
        knn_vote(noisy, idx, n_classes=2, rule="majority"),
        knn_vote(noisy, idx, n_classes=2, neighbor_similarities=sims, weighting="similarity"),
        knn_rank(noisy, idx, n_classes=2),
    ):
        assert np.flatnonzero(result.is_label_issue).tolist() == [3, 40]
        assert result.suggested_label[[3, 40]].tolist() == [0, 1]
        np.testing.assert_array_equal(
            result.suggested_label[~result.is_label_issue], noisy[~result.is_label_issue]
        )
        assert result.label_issue_score[3] > 0.9 and result.agreement[3] < 0.1
        assert ((result.label_issue_score >= 0) & (result.label_issue_score <= 1)).all()


def test_distribution_matches_a_loop() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 25)
    idx = rng.integers(0, 25, (25, 5))
    sims = rng.uniform(-0.2, 1.0, (25, 5))
    uniform = neighbor_label_distribution(idx, labels, n_classes=4)
    weighted = neighbor_label_distribution(
        idx, labels, n_classes=4, neighbor_similarities=sims, weighting="similarity"
    )
    for i in range(25):
        ref = np.bincount(labels[idx[i]], minlength=4) / 5
        np.testing.assert_allclose(uniform[i], ref)
        w = np.clip(sims[i], 0, None)
        ref_w = np.bincount(labels[idx[i]], weights=w, minlength=4) / w.sum()
        np.testing.assert_allclose(weighted[i], ref_w)


def test_plurality_ties_go_to_the_given_label() -> None:
    labels = np.array([0, 0, 1, 1, 0])
    idx = np.array([[1, 2, 3, 4], [0, 4, 2, 3], [3, 0, 4, 1], [2, 0, 1, 4], [0, 1, 2, 3]])
    # sample 0: neighbours 0,1,1,0 -> tie between 0 and 1 -> not flagged by plurality,
    # not flagged by majority either (2 of 4 is half)
    vote = knn_vote(labels, idx, n_classes=2)
    assert not vote.is_label_issue[0]
    assert vote.label_issue_score[0] == pytest.approx(0.5)
    assert not knn_vote(labels, idx, n_classes=2, rule="majority").is_label_issue[0]


def test_rank_respects_the_per_class_budget() -> None:
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 40)
    idx = rng.integers(0, 40, (40, 6))
    result = knn_rank(labels, idx, n_classes=3, issues_per_class=np.array([2, 0, 1]))
    flagged = labels[result.is_label_issue]
    assert (flagged == 0).sum() <= 2 and (flagged == 1).sum() == 0 and (flagged == 2).sum() <= 1


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="rule"):
        knn_vote(np.zeros(3, int), np.zeros((3, 2), int), rule="unanimous")
    with pytest.raises(ValueError, match="similarities"):
        neighbor_label_distribution(
            np.zeros((3, 2), int), np.zeros(3, int), n_classes=2, weighting="similarity"
        )
