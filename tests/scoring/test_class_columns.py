"""The given-label column and the best other column of (..., N, C) arrays, on constructed values."""

from __future__ import annotations

import numpy as np

from backend.scoring.class_columns import best_other, true_class


def test_best_other_and_true_class_on_known_values() -> None:
    values = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3], [0.3, 0.3, 0.4]])
    labels = np.array([1, 0, 2])
    np.testing.assert_array_equal(true_class(values, labels), [0.7, 0.5, 0.4])
    best, arg = best_other(values, labels)
    np.testing.assert_array_equal(best, [0.2, 0.3, 0.3])
    np.testing.assert_array_equal(arg, [2, 2, 0])  # a tie goes to the first class
    assert values[0, 1] == 0.7  # the input is not touched


def test_best_other_over_leading_axes_matches_a_loop() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(2, 3, 50, 4))
    labels = rng.integers(0, 4, 50)
    best, arg = best_other(values, labels)
    assert best.shape == arg.shape == (2, 3, 50)
    for s in range(2):
        for e in range(3):
            for i in range(50):
                row = values[s, e, i].copy()
                row[labels[i]] = -np.inf
                assert best[s, e, i] == row.max() and arg[s, e, i] == row.argmax()


def test_in_place_restores_the_input_and_one_class_has_no_other() -> None:
    values = np.array([[0.1, 0.9], [0.6, 0.4]])
    before = values.copy()
    best, arg = best_other(values, np.array([1, 1]), in_place=True)
    np.testing.assert_array_equal(values, before)
    np.testing.assert_array_equal(best, [0.1, 0.6])
    np.testing.assert_array_equal(arg, [0, 0])
    best, arg = best_other(np.ones((3, 1)), np.zeros(3, dtype=int))
    assert np.isneginf(best).all() and (arg == 0).all()
