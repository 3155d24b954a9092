"""Knowledge distillation onto a subset (Ben-Baruch et al. 2024): the KD weight rule, the loss
against a slow reference, and a student that follows its teacher over wrong labels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from backend.scoring.distillation import (
    KD_WEIGHT_EMPTY,
    KD_WEIGHT_FULL,
    distillation_loss,
    kd_weight,
    soften,
)
from backend.scoring.probes import ProbeConfig
from backend.scoring.subset_evaluation import fit_predict


def test_kd_weight_rises_as_fewer_samples_are_kept() -> None:
    assert kd_weight(1.0) == pytest.approx(KD_WEIGHT_FULL)
    assert kd_weight(1e-9) == pytest.approx(KD_WEIGHT_EMPTY)
    weights = [kd_weight(f) for f in (0.9, 0.7, 0.5, 0.3, 0.1)]
    assert weights == sorted(weights) and len(set(weights)) == len(weights)
    assert kd_weight(0.5, at_full=0.2, at_empty=0.6) == pytest.approx(0.4)
    assert kd_weight(0.3, at_full=0.5, at_empty=0.5) == 0.5  # a constant weight
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="kept_fraction"):
            kd_weight(bad)
    with pytest.raises(ValueError, match="at_empty"):
        kd_weight(0.5, at_empty=1.2)


def slow_loss(student: np.ndarray, label: int, teacher_logits: np.ndarray, alpha: float, tau: float) -> float:
    """One row, written out: (1 - a) * -log q_y + a * tau^2 * sum_c p_c log(p_c / q_c)."""
    def softmax(z: np.ndarray) -> np.ndarray:
        e = np.exp(z - z.max())
        return e / e.sum()

    hard = -math.log(softmax(student)[label])
    p, q = softmax(teacher_logits / tau), softmax(student / tau)
    kl = float(sum(pc * math.log(pc / qc) for pc, qc in zip(p, q, strict=True)))
    return (1 - alpha) * hard + alpha * tau**2 * kl


@pytest.mark.parametrize(("alpha", "tau"), [(0.0, 1.0), (0.3, 1.0), (0.7, 2.0), (1.0, 4.0)])
def test_loss_matches_the_slow_reference(alpha: float, tau: float) -> None:
    rng = np.random.default_rng(0)
    student, teacher = rng.normal(size=(6, 4)) * 2, rng.normal(size=(6, 4)) * 2
    labels = rng.integers(0, 4, 6)
    got = distillation_loss(torch.tensor(student), torch.tensor(labels), soften(torch.tensor(teacher), tau),
                            alpha=alpha, temperature=tau).numpy()
    want = [slow_loss(student[i], labels[i], teacher[i], alpha, tau) for i in range(6)]
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_loss_edge_cases() -> None:
    logits = torch.tensor([[2.0, -1.0, 0.5]])
    label = torch.tensor([0])
    plain = F.cross_entropy(logits, label, reduction="none")
    assert torch.equal(distillation_loss(logits, label, soften(logits, 2.0), alpha=0.0, temperature=2.0), plain)
    # a student equal to its teacher pays nothing for the soft term
    assert distillation_loss(logits, label, soften(logits, 3.0), alpha=1.0, temperature=3.0).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="alpha"):
        distillation_loss(logits, label, soften(logits, 1.0), alpha=1.5, temperature=1.0)
    with pytest.raises(ValueError, match="temperature"):
        soften(logits, 0.0)


def test_a_student_follows_its_teacher_over_wrong_labels() -> None:
    """Two separable blobs whose training labels are all swapped: plain cross-entropy learns the
    swap, a pure-KD student (alpha 1) learns the teacher's (correct) classes instead."""
    rng = np.random.default_rng(0)
    truth = np.repeat([0, 1], 100)
    x = (rng.normal(size=(200, 5)) + 3.0 * truth[:, None]).astype(np.float32)
    teacher = np.stack([-5.0 * (truth * 2 - 1), 5.0 * (truth * 2 - 1)], axis=1).astype(np.float32)
    swapped = 1 - truth
    rows = np.arange(200)
    config = ProbeConfig(kind="linear", epochs=20)
    common = {"n_classes": 2, "config": config, "seed": 0}
    plain = fit_predict(x, swapped, rows, [rows], **common)[0].argmax(axis=1)
    distilled = fit_predict(x, swapped, rows, [rows], teacher_logits=teacher, alpha=1.0, temperature=2.0,
                            **common)[0].argmax(axis=1)
    assert (plain == swapped).mean() > 0.95
    assert (distilled == truth).mean() > 0.95
