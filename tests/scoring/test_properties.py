"""Property tests (Hypothesis) of the scorers on small arrays: any finite input gives finite output
of the right shape; permuting the samples permutes the scores; renaming the classes consistently
leaves the flags (and the class-symmetric scores) unchanged.

Finite-and-shape properties take Hypothesis' own arrays (ties, repeats, extreme values within the
range a model's logits or probabilities take). The permutation and renaming properties draw the
arrays from a seeded generator of continuous values, so that no two samples tie: a flag budget
or a sort breaks ties by position, and a tie at a boundary may rightly go either way.

One tie is not in the data: confident learning rounds its calibrated joint to integers keeping
each row's total, and where two entries of a row have the same residual (a row (1, 1) scaled to
a total of 1), the class order decides which one rounds up, as in cleanlab. The flag budget of
``prune_by_noise_rate``, ``prune_by_class`` and the verdict can then differ by one when the
classes are renamed; the renaming property is checked where the calibrated joint is itself
consistent under the renaming (``assume``), and on the uncalibrated ``confident_learning`` rule
always.
"""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from backend.scoring.label_noise.aum import aum_from_logits
from backend.scoring.label_noise.confident_learning import (
    compute_confident_joint,
    find_label_issues,
    self_confidence,
)
from backend.scoring.label_noise.knn_vote import knn_vote
from backend.scoring.label_noise.verdict import combine_signals
from backend.scoring.neural_collapse import SCALAR_FIELDS, collapse_metrics, sample_mean_distances
from backend.scoring.pruning.dynamics_scores import aum_margin, el2n_score, forgetting_events

FAST = settings(max_examples=40, deadline=None)
LOGIT = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=64)
W_FREE = [f for f in SCALAR_FIELDS if not f.endswith("_w") and f not in ("nc3", "nc4")]


@st.composite
def dynamics(draw) -> tuple[np.ndarray, np.ndarray]:
    """Logits (S, E, N, C) from Hypothesis' arrays and labels (N,) in [0, C)."""
    s, e, n, c = (draw(st.integers(lo, hi)) for lo, hi in ((1, 2), (1, 4), (1, 12), (2, 5)))
    logits = draw(arrays(np.float64, (s, e, n, c), elements=LOGIT))
    labels = draw(arrays(np.int64, (n,), elements=st.integers(0, c - 1)))
    return logits, labels


@st.composite
def posteriors(draw) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities (N, C), rows sum to 1 (some exactly one-hot, some uniform), labels (N,)."""
    n, c = draw(st.integers(2, 30)), draw(st.integers(2, 5))
    weights = draw(arrays(np.float64, (n, c), elements=st.floats(0.0, 1e3, allow_nan=False)))
    weights[weights.sum(axis=1) == 0] = 1.0
    labels = draw(arrays(np.int64, (n,), elements=st.integers(0, c - 1)))
    return labels, weights / weights.sum(axis=1, keepdims=True)


def seeded(seed: int, n: int, c: int) -> tuple[np.random.Generator, np.ndarray, np.ndarray]:
    """A generator, labels (N,) covering every class, and tie-free probabilities (N, C)."""
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.arange(c), rng.integers(0, c, n - c)])
    probs = rng.dirichlet(np.full(c, 0.7), n)
    probs[np.arange(n), labels] += rng.random(n)  # mostly right, some confidently wrong
    return rng, labels, probs / probs.sum(axis=1, keepdims=True)


CASES = st.tuples(st.integers(0, 2**32 - 1), st.integers(6, 40), st.integers(2, 5))


# ----------------------------------------------------------------------------- finite, shaped
@FAST
@given(dynamics())
def test_dynamics_scores_are_finite_and_one_per_sample(case) -> None:
    logits, labels = case
    n = labels.size
    for score in (el2n_score(logits, labels), aum_margin(logits, labels), forgetting_events(logits, labels),
                  aum_from_logits(logits[0], labels)):
        assert score.shape == (n,) and np.isfinite(score).all()
    assert (el2n_score(logits, labels) <= np.sqrt(2) + 1e-9).all()
    assert (forgetting_events(logits, labels) >= 0).all()


@FAST
@given(posteriors(), st.sampled_from(["prune_by_noise_rate", "prune_by_class", "both", "confident_learning"]))
def test_confident_learning_and_verdict_are_finite_and_one_per_sample(case, filter_by: str) -> None:
    labels, probs = case
    flags = find_label_issues(labels, probs, filter_by=filter_by)
    assert flags.shape == labels.shape and flags.dtype == bool
    verdict = combine_signals(labels, pred_probs=probs)
    assert verdict.is_label_issue.shape == labels.shape
    assert np.isfinite(verdict.label_issue_score).all()
    assert ((verdict.label_issue_score >= 0) & (verdict.label_issue_score <= 1 + 1e-12)).all()
    assert ((verdict.suggested_label >= 0) & (verdict.suggested_label < probs.shape[1])).all()


@FAST
@given(st.integers(2, 25), st.integers(1, 6), st.integers(2, 4), st.data())
def test_knn_vote_is_finite_and_one_per_sample(n: int, k: int, c: int, data) -> None:
    labels = data.draw(arrays(np.int64, (n,), elements=st.integers(0, c - 1)))
    neighbours = data.draw(arrays(np.int64, (n, k), elements=st.integers(0, n - 1)))
    vote = knn_vote(labels, neighbours, n_classes=c)
    assert vote.label_distribution.shape == (n, c) and np.allclose(vote.label_distribution.sum(axis=1), 1)
    assert vote.is_label_issue.shape == (n,) and np.isfinite(vote.label_issue_score).all()


@FAST
@given(st.integers(0, 2**32 - 1), st.integers(4, 30), st.integers(1, 6), st.integers(2, 4),
       st.floats(1e-3, 1e3))
def test_collapse_metrics_are_finite_for_any_scale(seed: int, n: int, d: int, c: int, scale: float) -> None:
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.arange(c), rng.integers(0, c, n)])
    features = scale * (rng.normal(size=(labels.size, d)) + 3 * rng.normal(size=(c, d))[labels])
    metrics = collapse_metrics(features, labels)
    assert all(np.isfinite(getattr(metrics, f)) for f in W_FREE), metrics.to_dict()
    distances = sample_mean_distances(features, labels)
    assert distances.own.shape == (labels.size,) and np.isfinite(distances.own).all()
    assert np.isfinite(distances.nearest_other).all() and (distances.ratio >= 0).all()


# ----------------------------------------------------------------------------- permutations
@FAST
@given(CASES)
def test_permuting_samples_permutes_every_score(case) -> None:
    seed, n, c = case
    rng, labels, probs = seeded(seed, n, c)
    logits = rng.normal(size=(2, 5, n, c)) * 3
    perm = rng.permutation(n)
    for score in (el2n_score, aum_margin, forgetting_events):
        np.testing.assert_allclose(score(logits[:, :, perm], labels[perm]), score(logits, labels)[perm])
    np.testing.assert_array_equal(find_label_issues(labels[perm], probs[perm]), find_label_issues(labels, probs)[perm])
    np.testing.assert_allclose(self_confidence(labels[perm], probs[perm]), self_confidence(labels, probs)[perm])
    a, b = combine_signals(labels[perm], pred_probs=probs[perm]), combine_signals(labels, pred_probs=probs)
    np.testing.assert_array_equal(a.is_label_issue, b.is_label_issue[perm])
    np.testing.assert_allclose(a.label_issue_score, b.label_issue_score[perm])

    neighbours = np.stack([rng.choice(np.delete(np.arange(n), i), 4, replace=False) for i in range(n)])
    inverse = np.argsort(perm)  # sample perm[j] is sample j after permuting
    moved = knn_vote(labels[perm], inverse[neighbours[perm]], n_classes=c)
    vote = knn_vote(labels, neighbours, n_classes=c)
    np.testing.assert_array_equal(moved.is_label_issue, vote.is_label_issue[perm])
    np.testing.assert_allclose(moved.label_issue_score, vote.label_issue_score[perm])

    features = rng.normal(size=(n, 3)) + 2 * rng.normal(size=(c, 3))[labels]
    np.testing.assert_allclose(sample_mean_distances(features[perm], labels[perm]).ratio,
                               sample_mean_distances(features, labels).ratio[perm])
    whole, moved_nc = collapse_metrics(features, labels), collapse_metrics(features[perm], labels[perm])
    for f in W_FREE:
        np.testing.assert_allclose(getattr(moved_nc, f), getattr(whole, f), rtol=1e-7, atol=1e-9)


@FAST
@given(CASES)
def test_renaming_classes_leaves_flags_and_scores_unchanged(case) -> None:
    seed, n, c = case
    rng, labels, probs = seeded(seed, n, c)
    rename = rng.permutation(c)  # class k is called rename[k]
    renamed, renamed_probs = rename[labels], np.empty_like(probs)
    renamed_probs[:, rename] = probs
    np.testing.assert_array_equal(find_label_issues(renamed, renamed_probs, filter_by="confident_learning"),
                                  find_label_issues(labels, probs, filter_by="confident_learning"))
    joint, renamed_joint = compute_confident_joint(labels, probs)[0], compute_confident_joint(renamed, renamed_probs)[0]
    assume((renamed_joint[np.ix_(rename, rename)] == joint).all())  # no rounding tie (module docstring)
    for filter_by in ("prune_by_noise_rate", "prune_by_class", "both"):
        np.testing.assert_array_equal(find_label_issues(renamed, renamed_probs, filter_by=filter_by),
                                      find_label_issues(labels, probs, filter_by=filter_by))
    a, b = combine_signals(renamed, pred_probs=renamed_probs), combine_signals(labels, pred_probs=probs)
    np.testing.assert_array_equal(a.is_label_issue, b.is_label_issue)
    np.testing.assert_allclose(a.label_issue_score, b.label_issue_score)
    np.testing.assert_array_equal(a.suggested_label, rename[b.suggested_label])

    logits = rng.normal(size=(1, 4, n, c)) * 3
    renamed_logits = np.empty_like(logits)
    renamed_logits[..., rename] = logits
    for score in (el2n_score, aum_margin, forgetting_events):
        np.testing.assert_allclose(score(renamed_logits, renamed), score(logits, labels))

    neighbours = np.stack([rng.choice(np.delete(np.arange(n), i), 5, replace=False) for i in range(n)])
    vote, renamed_vote = knn_vote(labels, neighbours, n_classes=c), knn_vote(renamed, neighbours, n_classes=c)
    np.testing.assert_array_equal(renamed_vote.is_label_issue, vote.is_label_issue)
    np.testing.assert_allclose(renamed_vote.label_issue_score, vote.label_issue_score)

    features = rng.normal(size=(n, 3)) + 2 * rng.normal(size=(c, 3))[labels]
    np.testing.assert_allclose(sample_mean_distances(features, renamed).ratio, sample_mean_distances(features, labels).ratio)
    whole, renamed_nc = collapse_metrics(features, labels), collapse_metrics(features, renamed)
    for f in W_FREE:
        np.testing.assert_allclose(getattr(renamed_nc, f), getattr(whole, f), rtol=1e-7, atol=1e-9)
