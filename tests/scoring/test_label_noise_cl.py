"""In-house confident learning: flags equal cleanlab's, plus constructed cases with known answers.

cleanlab (AGPL-3.0) is imported here only, as the reference.
"""

from __future__ import annotations

import importlib
import warnings

import numpy as np
import pytest

from backend.scoring.label_noise.confident_learning import (
    FILTERS,
    calibrate_confident_joint,
    compute_confident_joint,
    confident_thresholds,
    estimate_noise_matrices,
    find_label_issues,
    normalized_margin,
    num_label_issues,
    round_preserving_row_totals,
    self_confidence,
)


def _random_case(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n, c = int(rng.integers(20, 300)), int(rng.integers(2, 8))
    logits = rng.standard_normal((n, c)) * rng.uniform(0.5, 4.0)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    labels = rng.integers(0, c, n)
    if seed % 2 == 0:  # mostly-right labels, like a real model
        labels = np.where(rng.random(n) < 0.75, probs.argmax(axis=1), labels)
    if seed % 3 == 0:
        probs = probs.astype(np.float32)
    if seed % 4 == 0:  # coarse probabilities: many ties
        probs = np.round(probs, 1) + 1e-3
        probs /= probs.sum(axis=1, keepdims=True)
    return labels, probs


def _digits_case(seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.model_selection import cross_val_predict

    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    x, y = x[:700] / 16.0, y[:700].copy()
    noisy = rng.choice(y.size, 100, replace=False)
    y[noisy] = (y[noisy] + rng.integers(1, 10, noisy.size)) % 10
    lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage=0.1)
    probs = cross_val_predict(lda, x, y, cv=5, method="predict_proba")
    return y, probs


CASES = [_random_case(s) for s in range(12)]


@pytest.fixture(scope="module")
def digits_cases() -> list[tuple[np.ndarray, np.ndarray]]:
    return [_digits_case(0), _digits_case(1)]


def _cleanlab_mask(labels, probs, **kwargs):
    filt = importlib.import_module("cleanlab.filter")  # dev extra: a reference, never skipped
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return filt.find_label_issues(labels, probs, n_jobs=1, **kwargs)


@pytest.mark.parametrize("filter_by", FILTERS)
@pytest.mark.parametrize("case", range(len(CASES)))
def test_flags_equal_cleanlab_random(filter_by: str, case: int) -> None:
    labels, probs = CASES[case]
    ours = find_label_issues(labels, probs, filter_by=filter_by)
    np.testing.assert_array_equal(ours, _cleanlab_mask(labels, probs, filter_by=filter_by))


@pytest.mark.parametrize("filter_by", FILTERS)
def test_flags_equal_cleanlab_digits(filter_by: str, digits_cases) -> None:
    for labels, probs in digits_cases:
        for p in (probs, probs.astype(np.float32)):
            ours = find_label_issues(labels, p, filter_by=filter_by)
            ref = _cleanlab_mask(labels, p, filter_by=filter_by)
            np.testing.assert_array_equal(ours, ref)
            assert ours.sum() > 50  # a real test: 100 labels were corrupted


@pytest.mark.parametrize("options", [{"frac_noise": 0.5}, {"min_examples_per_class": 40}])
@pytest.mark.parametrize("filter_by", ["prune_by_noise_rate", "prune_by_class", "both"])
def test_flags_equal_cleanlab_with_options(filter_by: str, options: dict, digits_cases) -> None:
    for labels, probs in [*CASES[:6], *digits_cases]:
        ours = find_label_issues(labels, probs, filter_by=filter_by, **options)
        np.testing.assert_array_equal(
            ours, _cleanlab_mask(labels, probs, filter_by=filter_by, **options)
        )


def test_missing_class_and_default_parallel_cleanlab() -> None:
    """A class absent from the labels; cleanlab with its default n_jobs (multiprocessing)."""
    filt = importlib.import_module("cleanlab.filter")  # dev extra: a reference, never skipped
    labels, probs = _random_case(4)
    labels = np.where(labels == 1, 0, labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = filt.find_label_issues(labels, probs)
    np.testing.assert_array_equal(find_label_issues(labels, probs), ref)


def test_joint_thresholds_and_scores_equal_cleanlab(digits_cases) -> None:
    count = importlib.import_module("cleanlab.count")  # dev extra: a reference, never skipped
    rank = importlib.import_module("cleanlab.rank")  # dev extra: a reference, never skipped
    for labels, probs in [*CASES, *digits_cases]:
        np.testing.assert_array_equal(
            confident_thresholds(labels, probs), count.get_confident_thresholds(labels, probs)
        )
        for calibrate in (True, False):
            ours, off = compute_confident_joint(labels, probs, calibrate=calibrate)
            ref, ref_off = count.compute_confident_joint(
                labels, probs, calibrate=calibrate, return_indices_of_off_diagonals=True
            )
            np.testing.assert_array_equal(ours, ref)
            np.testing.assert_array_equal(np.flatnonzero(off), np.sort(ref_off))
        assert num_label_issues(labels, probs) == count.num_label_issues(
            labels, probs, estimation_method="off_diagonal_calibrated"
        )
        np.testing.assert_allclose(
            self_confidence(labels, probs), rank.get_self_confidence_for_each_label(labels, probs)
        )
        np.testing.assert_allclose(
            normalized_margin(labels, probs),
            rank.get_normalized_margin_for_each_label(labels, probs),
        )


def test_known_answers() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    probs = np.full((9, 3), 0.05)
    probs[np.arange(9), labels] = 0.9
    assert not find_label_issues(labels, probs).any()
    probs[4] = [0.9, 0.05, 0.05]  # labelled 1, clearly a 0
    for filter_by in FILTERS:
        assert np.flatnonzero(find_label_issues(labels, probs, filter_by=filter_by)).tolist() == [4]
    joint, off = compute_confident_joint(labels, probs)
    assert joint.sum() == 9 and joint.sum(axis=1).tolist() == [3, 3, 3]
    assert joint[1, 0] == 1 and np.flatnonzero(off).tolist() == [4]
    noise, inverse = estimate_noise_matrices(joint)
    np.testing.assert_allclose(noise.sum(axis=0), 1.0)
    np.testing.assert_allclose(inverse.sum(axis=0), 1.0)
    assert self_confidence(labels, probs)[4] == pytest.approx(0.05)
    assert normalized_margin(labels, probs)[4] == pytest.approx((0.05 - 0.9 + 1) / 2)


def test_calibration_and_rounding_preserve_totals() -> None:
    rng = np.random.default_rng(7)
    floats = rng.random((5, 5)) * 10
    rounded = round_preserving_row_totals(floats)
    np.testing.assert_array_equal(rounded.sum(axis=1), np.round(floats.sum(axis=1)))
    labels = rng.integers(0, 5, 200)
    raw = rng.integers(1, 30, (5, 5))
    calibrated = calibrate_confident_joint(raw, labels)
    np.testing.assert_array_equal(calibrated.sum(axis=1), np.bincount(labels, minlength=5))


def test_input_validation() -> None:
    with pytest.raises(ValueError, match="filter_by"):
        find_label_issues(np.zeros(3, int), np.full((3, 2), 0.5), filter_by="nope")
    with pytest.raises(ValueError, match="lie in"):
        find_label_issues(np.array([0, 2]), np.full((2, 2), 0.5))
