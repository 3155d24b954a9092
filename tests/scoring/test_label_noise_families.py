"""Noise families (exact rates, the right transitions) and the flag count with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from backend.scoring.label_noise import noise_count
from backend.scoring.label_noise.confident_learning import num_label_issues
from backend.scoring.label_noise.noise_count import consensus_count, estimate_issue_count
from backend.scoring.label_noise.noise_families import (
    inject_family_noise,
    look_alike_pairs,
    transition_matrix,
)

C = 6


def _labels(per_class: int = 50) -> np.ndarray:
    return np.repeat(np.arange(C), per_class)


def _features(true: np.ndarray, seed: int = 0) -> np.ndarray:
    """Class centroids in three look-alike pairs: (0, 3), (1, 4), (2, 5) share a direction."""
    rng = np.random.default_rng(seed)
    base = np.eye(3, 8) * 5.0
    centroids = np.stack([base[k % 3] + 0.8 * np.eye(8)[3 + k // 3] for k in range(C)])
    return centroids[true] + 0.1 * rng.standard_normal((true.size, 8))


@pytest.mark.parametrize("rate", [0.05, 0.15, 0.25, 0.35, 0.45])
def test_symmetric_flips_exactly_rate_of_every_class_to_other_classes(rate: float) -> None:
    true = _labels()
    noisy = inject_family_noise(true, "symmetric", rate, n_classes=C, seed=1)
    for k in range(C):
        assert noisy.is_wrong[true == k].sum() == round(rate * 50)
    assert (noisy.is_wrong == (noisy.given_labels != true)).all()
    np.testing.assert_allclose(noisy.transition.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.diag(noisy.transition), 1.0 - rate)


def test_look_alike_pairs_match_the_most_similar_centroids() -> None:
    true = _labels()
    assert sorted(look_alike_pairs(_features(true), true, n_classes=C)) == [(0, 3), (1, 4), (2, 5)]


@pytest.mark.parametrize("rate", [0.15, 0.45])
def test_pairs_flip_only_to_the_partner_at_the_exact_rate(rate: float) -> None:
    true = _labels()
    noisy = inject_family_noise(true, "pairs", rate, n_classes=C, seed=2, features=_features(true))
    partner = {a: b for a, b in noisy.pairs} | {b: a for a, b in noisy.pairs}
    wrong = noisy.is_wrong
    assert (noisy.given_labels[wrong] == np.array([partner[k] for k in true[wrong]])).all()
    for k in range(C):
        assert wrong[true == k].sum() == round(rate * 50)
        # identifiable below 0.5: within every true class the own label stays the plurality
        assert np.bincount(noisy.given_labels[true == k], minlength=C).argmax() == k
    with pytest.raises(ValueError, match="needs the features"):
        inject_family_noise(true, "pairs", rate, n_classes=C, seed=2)


def test_class_dependent_moves_donor_labels_to_receivers_only() -> None:
    true = _labels(60)
    noisy = inject_family_noise(true, "class_dependent", 0.4, n_classes=C, seed=3)
    receivers = set(noisy.receivers)
    assert len(receivers) == C // 2
    for k in range(C):
        n_wrong = noisy.is_wrong[true == k].sum()
        assert n_wrong == (0 if k in receivers else 24)
    assert set(noisy.given_labels[noisy.is_wrong].tolist()) <= receivers
    # 20 % of all labels wrong, about 28 % of each receiving class's labels
    assert noisy.is_wrong.mean() == pytest.approx(0.2)
    fixed = inject_family_noise(true, "class_dependent", 0.1, n_classes=C, seed=3, receivers=(0, 1))
    assert fixed.receivers == (0, 1)
    again = inject_family_noise(true, "class_dependent", 0.4, n_classes=C, seed=3)
    assert np.array_equal(again.given_labels, noisy.given_labels)


def test_transition_matrix_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown noise family"):
        transition_matrix("uniform", 0.1, n_classes=C)
    with pytest.raises(ValueError, match="noise rate"):
        transition_matrix("symmetric", 1.0, n_classes=C)


def _signals_from_transition(true: np.ndarray, given: np.ndarray, t: np.ndarray, seed: int
                             ) -> tuple[np.ndarray, np.ndarray]:
    """What the two detectors see for a known T: probes estimate the noisy posterior T[true]
    (with some sample-to-sample spread), 10 neighbours of the same true class vote with labels
    drawn from T[true]."""
    rng = np.random.default_rng(seed)
    probs = t[true] * np.exp(0.3 * rng.standard_normal((true.size, t.shape[0])))
    probs /= probs.sum(axis=1, keepdims=True)
    votes = np.stack([rng.choice(t.shape[0], 10, p=t[k]) for k in true])
    knn = np.stack([np.bincount(v, minlength=t.shape[0]) for v in votes]) / 10.0
    return probs, knn


def test_count_is_close_to_the_truth_under_a_known_class_dependent_transition() -> None:
    true = np.repeat(np.arange(C), 200)
    noisy = inject_family_noise(true, "class_dependent", 0.4, n_classes=C, seed=4)
    probs, knn = _signals_from_transition(true, noisy.given_labels, noisy.transition, seed=5)
    posterior = 0.5 * probs + 0.5 * knn
    n_true = int(noisy.is_wrong.sum())  # 240
    # confident learning's thresholds are pulled down: it keeps well under the true count
    n_cl = num_label_issues(noisy.given_labels, posterior)
    assert n_cl < 0.75 * n_true
    count = estimate_issue_count(noisy.given_labels, posterior, pred_probs=probs, knn_distribution=knn)
    assert count.rule == "consensus"
    assert abs(count.n_issues - n_true) <= 0.1 * n_true
    assert abs(count.n_issues - n_true) < abs(n_cl - n_true) / 2


def test_count_keeps_confident_learning_under_symmetric_noise() -> None:
    true = np.repeat(np.arange(C), 200)
    noisy = inject_family_noise(true, "symmetric", 0.2, n_classes=C, seed=6)
    probs, knn = _signals_from_transition(true, noisy.given_labels, noisy.transition, seed=7)
    posterior = 0.5 * probs + 0.5 * knn
    count = estimate_issue_count(noisy.given_labels, posterior, pred_probs=probs, knn_distribution=knn)
    assert count.rule == "confident_learning"
    assert count.n_issues == num_label_issues(noisy.given_labels, posterior)
    assert abs(count.n_issues - noisy.is_wrong.sum()) <= 0.1 * noisy.is_wrong.sum()
    only_probs = estimate_issue_count(noisy.given_labels, posterior, pred_probs=probs)
    assert only_probs.consensus is None and only_probs.rule == "confident_learning"


def test_consensus_counts_samples_both_signals_reject() -> None:
    given = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    knn = np.array([[1.0, 0.0], [0.1, 0.9], [0.5, 0.5], [0.7, 0.3]])
    # sample 1: both say 1 (counted); 2: probes agree; 3: both say 0 (counted); tie = agreement
    assert consensus_count(given, probs, knn) == 2
    with pytest.raises(ValueError, match="agreement"):
        estimate_issue_count(given, probs, pred_probs=probs, knn_distribution=knn, agreement=1.5)


def _clean_probes(true: np.ndarray, seed: int, *, ambiguous: float = 0.05) -> np.ndarray:
    """Probes as the cleaning round makes them (trained on cleaned labels): confident in the
    true class, except an ``ambiguous`` share of samples split about evenly with another class."""
    rng = np.random.default_rng(seed)
    logits = 6.0 * np.eye(C)[true] + 0.5 * rng.standard_normal((true.size, C))
    split = rng.random(true.size) < ambiguous
    logits[split, (true[split] + 1) % C] = logits[split, true[split]] + 0.2 * rng.standard_normal(split.sum())
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    return probs / probs.sum(axis=1, keepdims=True)


def _cleaned_votes(true: np.ndarray, seed: int, *, residual: float = 0.1) -> np.ndarray:
    """Neighbour label shares as the cleaning round makes them (flagged neighbours relabelled):
    10 votes, each for the true class but for a ``residual`` share of uniform other classes."""
    rng = np.random.default_rng(seed)
    votes = np.where(rng.random((true.size, 10)) < residual,
                     (true[:, None] + rng.integers(1, C, (true.size, 10))) % C, true[:, None])
    return np.stack([np.bincount(v, minlength=C) for v in votes]) / 10.0


def test_wrong_label_posterior_is_bayes_rule_under_a_known_transition() -> None:
    t = np.array([[0.8, 0.2, 0.0], [0.1, 0.9, 0.0], [0.0, 0.0, 1.0]])
    probs = np.array([[0.5, 0.5, 0.0], [0.9, 0.1, 0.0], [0.0, 0.0, 1.0]])
    given = np.array([1, 1, 2])
    # sample 0: clean evidence 0.5 * 0.9 against 0.5 * 0.2 from class 0 -> wrong 0.1 / 0.55
    # sample 1: 0.1 * 0.9 against 0.9 * 0.2 -> wrong 0.18 / 0.27; sample 2: certain
    expected = [0.1 / 0.55, 0.18 / 0.27, 0.0]
    np.testing.assert_allclose(noise_count.wrong_label_posterior(given, probs, t), expected)


def test_counted_transition_is_the_label_share_per_predicted_class() -> None:
    probs = np.eye(3)[[0, 0, 0, 0, 1, 1, 2]]
    given = np.array([0, 0, 0, 1, 1, 1, 0])
    t = noise_count.counted_transition(given, probs)
    np.testing.assert_allclose(t.sum(axis=1), 1.0)
    np.testing.assert_allclose(t[0], [0.75, 0.25, 0.0], atol=1e-3)
    np.testing.assert_allclose(t[2], [1.0, 0.0, 0.0], atol=3e-3)  # one sample: the pseudo-count shows


def test_expected_f1_cut_maximises_the_plug_in_expected_f1() -> None:
    order = np.arange(4)
    # total 2.0: k = 1, 2, 3, 4 give 1.8/3, 3.0/4, 3.8/5, 4.0/6 -> best k = 3
    assert noise_count.expected_f1_cut(np.array([0.9, 0.6, 0.4, 0.1]), order) == 3
    assert noise_count.expected_f1_cut(np.array([1.0, 1.0, 0.0, 0.0, 0.0]), np.arange(5)) == 2
    assert noise_count.expected_f1_cut(np.array([0.01, 0.02, 0.0]), np.arange(3)) == 0  # nothing likely wrong
    assert noise_count.expected_f1_cut(np.array([0.0, 1.0, 1.0, 0.0]), np.array([1, 2, 0, 3])) == 2


@pytest.mark.parametrize(("family", "rate"), [("class_dependent", 0.4), ("symmetric", 0.2), ("pairs", 0.3),
                                              ("symmetric", 0.05)])
def test_expected_f1_count_is_close_to_the_truth_with_cleaned_probes(family: str, rate: float) -> None:
    true = np.repeat(np.arange(C), 200)
    noisy = inject_family_noise(true, family, rate, n_classes=C, seed=8, features=_features(true))
    probs = _clean_probes(true, seed=9)
    knn = _cleaned_votes(true, seed=10)
    posterior = 0.5 * probs + 0.5 * knn
    n_true = int(noisy.is_wrong.sum())
    count = estimate_issue_count(noisy.given_labels, posterior, pred_probs=probs, knn_distribution=knn,
                                 rule="expected_f1")
    assert count.rule == "expected_f1"
    assert abs(count.n_issues - n_true) <= max(0.05 * n_true, 3)
    assert count.expected is not None and count.consensus is None


def test_an_ambiguous_clean_sample_keeps_a_low_wrong_posterior() -> None:
    true = np.repeat(np.arange(C), 200)
    probs = _clean_probes(true, seed=11, ambiguous=0.0)
    probs[0] = 0.0
    probs[0, [0, 1]] = [0.45, 0.55]  # a clean sample of class 0 the probes slightly prefer as 1
    wrong = noise_count.wrong_label_posterior(true, probs)
    assert wrong[0] < 0.05  # class 1 almost never gives label 0
    with pytest.raises(ValueError, match="unknown count rule"):
        estimate_issue_count(true, probs, rule="top_k")


def test_expected_f1_count_leaves_out_the_ambiguous_samples_both_signals_reject() -> None:
    """The consensus count's floor: 5 % clean samples that both signals narrowly give to a
    neighbouring class (P 0.45 / 0.55, K 4 / 6 votes). They are counted by the consensus, not by
    the expected-F1 cut (that class rarely gives their label)."""
    true = np.repeat(np.arange(C), 200)
    noisy = inject_family_noise(true, "symmetric", 0.05, n_classes=C, seed=12)
    probs = _clean_probes(true, seed=13, ambiguous=0.0)
    knn = _cleaned_votes(true, seed=14, residual=0.0)
    rng = np.random.default_rng(15)
    ambiguous = np.flatnonzero(~noisy.is_wrong)[rng.permutation((~noisy.is_wrong).sum())[:60]]
    other = (true[ambiguous] + 1) % C
    for dist, (own, theirs) in ((probs, (0.45, 0.55)), (knn, (0.4, 0.6))):
        dist[ambiguous] = 0.0
        dist[ambiguous, true[ambiguous]] = own
        dist[ambiguous, other] = theirs
    posterior = 0.5 * probs + 0.5 * knn
    n_true = int(noisy.is_wrong.sum())  # 60
    count = estimate_issue_count(noisy.given_labels, posterior, pred_probs=probs, knn_distribution=knn,
                                 rule="expected_f1")
    assert consensus_count(noisy.given_labels, probs, knn) >= n_true + 50
    assert abs(count.n_issues - n_true) <= 3


def test_fit_temperature_recovers_a_known_under_confidence() -> None:
    """Labels drawn from softmax(z); the probes say softmax(z / 2) (twice too soft). The fitted
    temperature sharpens them back: T ~ 0.5, and the tempered probabilities equal softmax(z)."""
    rng = np.random.default_rng(16)
    z = 3.0 * rng.standard_normal((4000, C))
    true_probs = np.exp(z - z.max(axis=1, keepdims=True))
    true_probs /= true_probs.sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(C, p=p) for p in true_probs])
    soft = np.exp(z / 2 - (z / 2).max(axis=1, keepdims=True))
    soft /= soft.sum(axis=1, keepdims=True)
    temperature = noise_count.fit_temperature(soft, labels)
    assert temperature == pytest.approx(0.5, rel=0.08)
    np.testing.assert_allclose(noise_count.tempered(soft, 0.5), true_probs, atol=1e-5)
    in_place = soft.astype(np.float32)
    assert noise_count.tempered(in_place, 0.5, out=in_place) is in_place
    assert noise_count.fit_temperature(soft, labels, np.zeros(labels.size, bool)) == 1.0  # nothing kept: unchanged
