"""Training-dynamics pruning scores on hand-made logits with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from backend.scoring.pruning.dynamics_scores import (
    aum_margin,
    cartography,
    default_early_epoch,
    dynamic_uncertainty,
    el2n_score,
    forgetting_events,
    grand_score,
    tdds_score,
)

LN3 = math.log(3.0)  # logits (ln 3, 0) give probabilities (0.75, 0.25)


def correctness_logits(pattern: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(E, N, 2) logits and labels (all 0) from per-sample strings of C (correct) / I."""
    n_epochs = len(pattern[0])
    logits = np.zeros((n_epochs, len(pattern), 2))
    for i, seq in enumerate(pattern):
        for e, mark in enumerate(seq):
            logits[e, i] = (1.0, 0.0) if mark == "C" else (0.0, 1.0)
    return logits, np.zeros(len(pattern), dtype=np.int64)


# -- EL2N -------------------------------------------------------------------------------------


def test_el2n_closed_form_values() -> None:
    logits = np.array([[[LN3, 0.0], [LN3, 0.0], [0.0, 0.0]]])  # (1, 3, 2)
    labels = np.array([0, 1, 0])
    # errors (-0.25, 0.25), (0.75, -0.75), (-0.5, 0.5)
    expected = [0.25 * math.sqrt(2), 0.75 * math.sqrt(2), 0.5 * math.sqrt(2)]
    np.testing.assert_allclose(el2n_score(logits, labels), expected, rtol=1e-12)


def test_el2n_higher_when_logits_disagree_with_label() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(1, 50, 5))
    agree = logits.argmax(axis=-1)[0]
    disagree = (agree + 1) % 5
    assert (el2n_score(logits, disagree) > el2n_score(logits, agree)).all()
    confident = np.zeros((1, 1, 4))
    confident[0, 0, 2] = 50.0
    np.testing.assert_allclose(el2n_score(confident, np.array([2])), [0.0], atol=1e-12)
    np.testing.assert_allclose(el2n_score(confident, np.array([0])), [math.sqrt(2)], rtol=1e-9)


@pytest.mark.parametrize(("n_epochs", "epoch"), [(1, 0), (5, 0), (10, 0), (20, 1), (200, 19)])
def test_default_early_epoch(n_epochs: int, epoch: int) -> None:
    assert default_early_epoch(n_epochs) == epoch


def test_el2n_reads_the_requested_epoch() -> None:
    logits = np.zeros((20, 1, 2))
    logits[1, 0] = (LN3, 0.0)  # epoch 1 = 10% into 20 epochs
    logits[-1, 0] = (50.0, 0.0)
    y = np.array([0])
    np.testing.assert_allclose(el2n_score(logits, y), [0.25 * math.sqrt(2)])
    np.testing.assert_allclose(el2n_score(logits, y, epoch=0), [0.5 * math.sqrt(2)])
    np.testing.assert_allclose(el2n_score(logits, y, epoch=-1), [0.0], atol=1e-12)
    with pytest.raises(ValueError, match="epoch 20 out of range for 20"):
        el2n_score(logits, y, epoch=20)


def test_el2n_averages_over_seeds() -> None:
    runs = np.zeros((2, 1, 1, 2))
    runs[0, 0, 0] = (LN3, 0.0)  # 0.25 sqrt 2
    runs[1, 0, 0] = (0.0, 0.0)  # 0.5 sqrt 2
    np.testing.assert_allclose(el2n_score(runs, np.array([0])), [0.375 * math.sqrt(2)])


def test_dynamics_input_errors() -> None:
    with pytest.raises(ValueError, match="must be \\(epochs, N, classes\\)"):
        el2n_score(np.zeros((3, 2)), np.array([0, 1, 0]))
    with pytest.raises(ValueError, match="NaN or infinite"):
        el2n_score(np.full((1, 2, 2), np.nan), np.array([0, 1]))
    with pytest.raises(ValueError, match="labels must have shape \\(2,\\)"):
        aum_margin(np.zeros((1, 2, 2)), np.array([0, 1, 0]))
    with pytest.raises(ValueError, match="labels must be < n_classes=2"):
        forgetting_events(np.zeros((1, 2, 2)), np.array([0, 2]))
    with pytest.raises(ValueError, match="integer class ids"):
        cartography(np.zeros((1, 2, 2)), np.array([0.0, 1.0]))


# -- GraNd ------------------------------------------------------------------------------------


def test_grand_matches_autograd_gradient_norm_of_last_layer() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    n, hidden, n_classes = 7, 5, 4
    h = rng.normal(size=(n, hidden))
    weight = rng.normal(size=(n_classes, hidden))
    bias = rng.normal(size=n_classes)
    labels = rng.integers(0, n_classes, size=n)
    logits = h @ weight.T + bias

    expected = []
    for i in range(n):
        w = torch.tensor(weight, requires_grad=True)
        b = torch.tensor(bias, requires_grad=True)
        z = w @ torch.tensor(h[i]) + b
        loss = torch.nn.functional.cross_entropy(z[None], torch.tensor([int(labels[i])]))
        gw, gb = torch.autograd.grad(loss, (w, b))
        expected.append(math.sqrt(float((gw**2).sum() + (gb**2).sum())))

    got = grand_score(logits[None], h[None], labels, epoch=0)
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    # and it is EL2N scaled by sqrt(||h||^2 + 1)
    np.testing.assert_allclose(
        got, el2n_score(logits[None], labels, epoch=0) * np.sqrt((h**2).sum(axis=1) + 1.0)
    )


def test_grand_feature_shape_must_match() -> None:
    with pytest.raises(ValueError, match="must share \\(seeds, epochs, N\\)"):
        grand_score(np.zeros((2, 3, 4)), np.zeros((2, 4, 5)), np.zeros(3, dtype=int))


# -- forgetting -------------------------------------------------------------------------------


def test_forgetting_counts_on_hand_made_sequences() -> None:
    logits, labels = correctness_logits(
        ["CCCCCC", "CICICI", "ICIICC", "IIIIII", "IIIIIC", "CCCCCI"]
    )
    events = forgetting_events(logits, labels)
    np.testing.assert_array_equal(events, [0, 3, 1, 6, 0, 1])
    # never learned ranks as the most forgotten, above the most-forgotten learned sample
    assert events.argmax() == 3
    assert events.dtype == np.float64


def test_forgetting_never_learned_beats_every_learned_pattern() -> None:
    # the worst learned pattern over E epochs has floor(E / 2) events
    for n_epochs in (1, 2, 3, 4, 7):
        worst = "".join("C" if e % 2 == 0 else "I" for e in range(n_epochs))
        logits, labels = correctness_logits([worst, "I" * n_epochs])
        events = forgetting_events(logits, labels)
        assert events[0] == n_epochs // 2
        assert events[1] == n_epochs > events[0]


def test_forgetting_mean_over_seeds() -> None:
    run_a, labels = correctness_logits(["CICC", "IIII"])
    run_b, _ = correctness_logits(["CCCC", "ICCC"])
    events = forgetting_events(np.stack([run_a, run_b]), labels)
    np.testing.assert_array_equal(events, [0.5, 2.0])  # (1 + 0) / 2; (4 + 0) / 2


# -- AUM --------------------------------------------------------------------------------------


def test_aum_margin_known_values() -> None:
    logits = np.array(
        [
            [[2.0, 0.0, 1.0], [2.0, 0.0, 1.0], [0.0, 3.0, 3.0]],
            [[4.0, 0.0, 1.0], [2.0, 0.0, 1.0], [0.0, 3.0, 3.0]],
        ]
    )  # (E=2, N=3, C=3)
    labels = np.array([0, 1, 2])
    # sample 0: margins 1 and 3; sample 1: 0 - 2 = -2 twice; sample 2: tie -> 0
    np.testing.assert_allclose(aum_margin(logits, labels), [2.0, -2.0, 0.0])


def test_aum_negative_when_another_class_is_favoured() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(5, 40, 4))
    logits[..., 3] += 5.0  # every sample strongly prefers class 3
    margins = aum_margin(logits, np.zeros(40, dtype=int))
    assert (margins < 0).all()
    assert (aum_margin(logits, np.full(40, 3)) > 0).all()


# -- dynamic uncertainty ----------------------------------------------------------------------


def test_dynamic_uncertainty_zero_for_constant_predictions() -> None:
    rng = np.random.default_rng(2)
    one_epoch = rng.normal(size=(1, 6, 3))
    logits = np.repeat(one_epoch, 12, axis=0)
    np.testing.assert_allclose(
        dynamic_uncertainty(logits, rng.integers(0, 3, size=6)), 0.0, atol=1e-15
    )


def test_dynamic_uncertainty_alternating_probabilities() -> None:
    # true-class probability alternates 0.5, 0.75, 0.5, 0.75
    logits = np.zeros((4, 1, 2))
    logits[1::2, 0, 0] = LN3
    y = np.array([0])
    # window 2: every window {0.5, 0.75} has population std 0.125
    np.testing.assert_allclose(dynamic_uncertainty(logits, y, window=2), [0.125])
    # window 3: {0.5, 0.75, 0.5} and {0.75, 0.5, 0.75} both have std sqrt(2) / 12
    np.testing.assert_allclose(dynamic_uncertainty(logits, y, window=3), [math.sqrt(2) / 12])
    # window longer than the run: one window of all epochs
    np.testing.assert_allclose(dynamic_uncertainty(logits, y), [0.125])
    with pytest.raises(ValueError, match="window must be >= 2"):
        dynamic_uncertainty(logits, y, window=1)


def test_dynamic_uncertainty_slides_the_window() -> None:
    # p = 0.5, 0.5, 0.75, 0.75: window 2 gives stds 0, 0.125, 0 -> mean 0.125 / 3
    logits = np.zeros((4, 1, 2))
    logits[2:, 0, 0] = LN3
    np.testing.assert_allclose(dynamic_uncertainty(logits, np.array([0]), window=2), [0.125 / 3])


# -- TDDS -------------------------------------------------------------------------------------


def _contribution(p_next: np.ndarray, p_prev: np.ndarray) -> float:
    return float(np.abs(p_next * np.log(p_next / p_prev)).sum())


def _two_class_logits(p0: list[float]) -> np.ndarray:
    """(E, 1, 2) logits whose softmax puts probability p0[e] on class 0 at epoch e."""
    p = np.asarray(p0)
    logits = np.zeros((p.size, 1, 2))
    logits[:, 0, 0] = np.log(p / (1 - p))
    return logits


def test_tdds_zero_for_constant_predictions() -> None:
    rng = np.random.default_rng(3)
    logits = np.repeat(rng.normal(size=(1, 5, 4)), 8, axis=0)
    np.testing.assert_allclose(tdds_score(logits), 0.0, atol=1e-12)


def test_tdds_hand_computed_single_window() -> None:
    seq = [0.5, 0.75, 0.5]
    g = [_contribution(np.array([0.75, 0.25]), np.array([0.5, 0.5])),
         _contribution(np.array([0.5, 0.5]), np.array([0.75, 0.25]))]
    spread = abs(g[0] - g[1]) / math.sqrt(2)  # ||g - mean g|| for two values
    got = tdds_score(_two_class_logits(seq), window=2, decay=0.9)
    np.testing.assert_allclose(got, [0.9 * spread], rtol=1e-6)


def test_tdds_weights_later_windows_more() -> None:
    # contributions g0, g1, g2 with window 2: windows (g0, g1) and (g1, g2)
    seq = [0.5, 0.6, 0.9, 0.2]
    probs = [np.array([p, 1 - p]) for p in seq]
    g = [_contribution(probs[i + 1], probs[i]) for i in range(3)]
    r = [abs(g[0] - g[1]) / math.sqrt(2), abs(g[1] - g[2]) / math.sqrt(2)]
    got = tdds_score(_two_class_logits(seq), window=2, decay=0.7)
    np.testing.assert_allclose(got, [0.7 * 0.3 * r[0] + 0.7 * r[1]], rtol=1e-6)
    # a trajectory of the first 3 epochs keeps only the first window, now the last one
    np.testing.assert_allclose(
        tdds_score(_two_class_logits(seq), window=2, decay=0.7, trajectory=3), [0.7 * r[0]],
        rtol=1e-6,
    )


def test_tdds_ranks_oscillating_above_steady_and_averages_seeds() -> None:
    steady = _two_class_logits([0.5, 0.6, 0.7, 0.8, 0.85, 0.9])[:, 0]
    wobbly = _two_class_logits([0.5, 0.9, 0.3, 0.95, 0.2, 0.9])[:, 0]
    logits = np.stack([steady, wobbly], axis=1)  # (E, 2, 2)
    scores = tdds_score(logits, window=3)
    assert scores[1] > scores[0] >= 0
    both = np.stack([logits, logits[:, ::-1]])  # second seed swaps the two samples
    np.testing.assert_allclose(tdds_score(both, window=3), [scores.mean()] * 2, rtol=1e-9)


def test_tdds_short_runs_shrink_the_window_and_bad_options_raise() -> None:
    logits = _two_class_logits([0.5, 0.75, 0.5])
    np.testing.assert_allclose(tdds_score(logits), tdds_score(logits, window=2), rtol=1e-12)
    with pytest.raises(ValueError, match="window must be >= 2"):
        tdds_score(logits, window=1)
    with pytest.raises(ValueError, match="decay must lie in"):
        tdds_score(logits, decay=0.0)
    with pytest.raises(ValueError, match="trajectory must lie in"):
        tdds_score(logits, trajectory=4)


# -- cartography ------------------------------------------------------------------------------


def test_cartography_coordinates() -> None:
    logits = np.zeros((4, 2, 2))
    logits[:, 0, 0] = [LN3, LN3, 0.0, -LN3]  # p(y=0) = 0.75, 0.75, 0.5, 0.25
    logits[:, 1, 1] = 50.0  # sample 1 (label 1) always confidently right
    carto = cartography(logits, np.array([0, 1]))
    np.testing.assert_allclose(carto.confidence, [0.5625, 1.0])
    np.testing.assert_allclose(
        carto.variability, [np.std([0.75, 0.75, 0.5, 0.25]), 0.0], atol=1e-15
    )
    # argmax ties (0, 0) go to class 0 = the label
    np.testing.assert_allclose(carto.correctness, [0.75, 1.0])
