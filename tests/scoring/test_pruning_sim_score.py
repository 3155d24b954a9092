"""SIM score terms (Grosz et al. 2024): separability, integrity, model certainty, combination."""

from __future__ import annotations

import math

import numpy as np
import pytest

from backend.scoring.pruning.sim_score import (
    QUANTILE_FLOOR,
    class_prototypes,
    integrity,
    jensen_shannon,
    model_certainty,
    separability,
    sims_score,
)


def unit(deg: float) -> np.ndarray:
    return np.array([math.cos(math.radians(deg)), math.sin(math.radians(deg))])


def reference_separability(x: np.ndarray, y: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Slow loop version of the documented formula."""
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    protos = {}
    for c in sorted(set(y.tolist())):
        m = xn[y == c].mean(axis=0)
        protos[c] = m / np.linalg.norm(m)
    out = []
    for i in range(len(x)):
        d_pos = 1.0 - xn[i] @ protos[y[i]]
        d_neg = min(1.0 - xn[i] @ p for c, p in protos.items() if c != y[i])
        out.append(d_neg / (max(d_pos, 0.0) + eps))
    return np.array(out)


# -- separability -----------------------------------------------------------------------------


def test_separability_known_values_and_direction() -> None:
    # class 0 at -10, 10, -45, 45 degrees (prototype 0 deg); class 1 at 80, 100 (prototype 90)
    angles = [-10.0, 10.0, -45.0, 45.0, 80.0, 100.0]
    x = np.stack([unit(a) for a in angles]).astype(np.float32)
    y = np.array([0, 0, 0, 0, 1, 1])
    classes, protos = class_prototypes(x, y)
    assert classes.tolist() == [0, 1]
    np.testing.assert_allclose(protos, [unit(0), unit(90)], atol=1e-6)

    s = separability(x, y)
    cos = lambda deg: math.cos(math.radians(deg))  # noqa: E731
    # the point at 10 deg sits in its own cluster: d_N / d_P = (1 - cos 80) / (1 - cos 10)
    assert s[1] == pytest.approx((1 - cos(80)) / (1 - cos(10) + 1e-6), rel=1e-4)
    # the point at 45 deg lies between the prototypes: ratio ~ 1
    assert s[3] == pytest.approx(1.0, rel=1e-4)
    assert s[1] > s[3]  # own cluster = more separable = easier
    np.testing.assert_allclose(s, reference_separability(x, y), rtol=1e-4)


def test_separability_below_one_for_a_sample_on_the_wrong_side() -> None:
    rng = np.random.default_rng(0)
    a = unit(0) + 0.05 * rng.normal(size=(20, 2))
    b = unit(90) + 0.05 * rng.normal(size=(20, 2))
    x = np.vstack([a, b, unit(85)[None]]).astype(np.float32)
    y = np.array([0] * 20 + [1] * 20 + [0])  # the last one is labelled 0 but sits with class 1
    s = separability(x, y)
    assert s[40] < 1.0 < s[:40].min()
    assert s.argmin() == 40
    # compare d_P / d_N: float32 cosines make d_P ~ 1e-5 (hence s ~ 1e4) imprecise in relative terms
    np.testing.assert_allclose(1.0 / s, 1.0 / reference_separability(x, y), atol=1e-5)


def test_separability_scale_invariant_and_on_digits() -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = digits.data[:300].astype(np.float32), digits.target[:300]
    s = separability(x, y)
    np.testing.assert_allclose(s, reference_separability(x.astype(np.float64), y), rtol=1e-3)
    np.testing.assert_allclose(separability(3.0 * x, y), s, rtol=1e-4)


def test_separability_needs_two_classes() -> None:
    with pytest.raises(ValueError, match="at least two classes"):
        separability(np.eye(3), np.zeros(3, dtype=int))


# -- integrity --------------------------------------------------------------------------------


def test_integrity_is_the_norm_itself() -> None:
    norms = np.array([0.0, 1.5, 20.0], dtype=np.float32)
    out = integrity(norms)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [0.0, 1.5, 20.0])


@pytest.mark.parametrize(
    "norms", [np.array([1.0, -0.1]), np.array([np.nan]), np.array([]), np.ones((2, 2))]
)
def test_integrity_rejects_bad_norms(norms: np.ndarray) -> None:
    with pytest.raises(ValueError, match="finite non-negative"):
        integrity(norms)


# -- model certainty (Jensen-Shannon) ---------------------------------------------------------


def test_certainty_one_when_probes_agree_zero_when_they_disagree_completely() -> None:
    p = np.array([[0.2, 0.5, 0.3], [1.0, 0.0, 0.0]])
    agree = np.stack([p, p, p])
    np.testing.assert_allclose(model_certainty(agree), [1.0, 1.0], atol=1e-12)
    # two probes with disjoint one-hot predictions: JSD = log 2, normalised to 1
    two = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    np.testing.assert_allclose(jensen_shannon(two), [1.0])
    np.testing.assert_allclose(model_certainty(two), [0.0], atol=1e-12)
    # three probes on three classes, all different: JSD = log 3 / log 3
    np.testing.assert_allclose(jensen_shannon(np.eye(3)[:, None, :]), [1.0])


def test_jensen_shannon_known_value() -> None:
    # p1 = (1, 0), p2 = (0.5, 0.5): H(0.75, 0.25) - (0 + log 2) / 2, divided by log 2
    probs = np.array([[[1.0, 0.0]], [[0.5, 0.5]]])
    h_mix = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    expected = (h_mix - 0.5 * math.log(2)) / math.log(2)
    np.testing.assert_allclose(jensen_shannon(probs), [expected], rtol=1e-12)
    assert expected == pytest.approx(0.3112781, abs=1e-7)
    # rows are renormalised: scaling a model's row changes nothing
    np.testing.assert_allclose(jensen_shannon(probs * [[[2.0]], [[1.0]]]), [expected])


def test_certainty_orders_agreeing_above_disagreeing() -> None:
    agreeing = np.array([[0.8, 0.1, 0.1], [0.7, 0.2, 0.1]])
    disagreeing = np.array([[0.8, 0.1, 0.1], [0.1, 0.1, 0.8]])
    c = model_certainty(np.stack([agreeing, disagreeing], axis=1))  # (K=2, N=2, C=3)
    assert c[0] > c[1]
    assert 0.0 <= c.min() and c.max() <= 1.0


def test_jensen_shannon_errors() -> None:
    with pytest.raises(ValueError, match="K >= 2"):
        jensen_shannon(np.ones((1, 3, 2)) / 2)
    with pytest.raises(ValueError, match="K >= 2"):
        jensen_shannon(np.ones((3, 2)) / 2)
    with pytest.raises(ValueError, match="finite non-negative"):
        jensen_shannon(np.array([[[1.5, -0.5]], [[0.5, 0.5]]]))


# -- the combined score -----------------------------------------------------------------------


def test_sims_score_single_term_is_its_rank_quantile_with_floor() -> None:
    out = sims_score(separability=np.array([3.0, 1.0, 2.0]))
    np.testing.assert_allclose(out, [1.0, QUANTILE_FLOOR, 0.5])


def test_sims_score_geometric_mean_of_quantiles() -> None:
    sep = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    integ = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    cert = np.array([0.1, 0.9, 0.5, 0.6, 0.7])
    # quantiles: sep 0, .25, .5, .75, 1; integ 1, .75, .5, .25, 0; cert 0, 1, .25, .5, .75
    q_sep = np.maximum([0, 0.25, 0.5, 0.75, 1], QUANTILE_FLOOR)
    q_int = np.maximum([1, 0.75, 0.5, 0.25, 0], QUANTILE_FLOOR)
    q_cert = np.maximum([0, 1, 0.25, 0.5, 0.75], QUANTILE_FLOOR)
    np.testing.assert_allclose(
        sims_score(separability=sep, integrity=integ, certainty=cert),
        np.cbrt(q_sep * q_int * q_cert),
    )
    np.testing.assert_allclose(
        sims_score(separability=sep, integrity=integ, certainty=cert, weights=(2.0, 1.0, 0.0)),
        (q_sep**2 * q_int) ** (1 / 3),
    )
    # a missing term is left out
    np.testing.assert_allclose(
        sims_score(separability=sep, certainty=cert), np.sqrt(q_sep * q_cert)
    )


def test_sims_score_quantiles_within_each_class() -> None:
    sep = np.array([1.0, 2.0, 100.0, 200.0])
    labels = np.array([0, 0, 1, 1])
    np.testing.assert_allclose(
        sims_score(separability=sep, labels=labels), [QUANTILE_FLOOR, 1.0, QUANTILE_FLOOR, 1.0]
    )
    np.testing.assert_allclose(sims_score(separability=sep), [QUANTILE_FLOOR, 1 / 3, 2 / 3, 1.0])


def test_sims_score_errors() -> None:
    sep = np.ones(3)
    with pytest.raises(ValueError, match="weights must be >= 0"):
        sims_score(separability=sep, weights=(-1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="at least one SIM term"):
        sims_score(separability=sep, weights=(0.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="integrity must be a finite \\(3,\\) array"):
        sims_score(separability=sep, integrity=np.ones(4))
    with pytest.raises(ValueError, match="certainty must be a finite"):
        sims_score(separability=sep, certainty=np.array([1.0, np.nan, 1.0]))
