"""Knowledge distillation onto a pruned subset (Ben-Baruch et al. 2024, "Distilling the Knowledge
in Data Pruning", arXiv 2403.07854).

A student trained on the kept samples learns from the ground-truth labels and from the soft
predictions of a teacher trained on the complete data:

    loss = (1 - alpha) * CE(student, label) + alpha * tau^2 * KL(teacher_tau || student_tau)

where ``x_tau = softmax(logits / tau)`` (Hinton et al. 2015's temperature; the ``tau^2`` keeps the
soft term's gradient on the scale of the hard term's). Ben-Baruch et al. show that with this
loss simple random pruning is comparable or superior to score-based pruning, and that the best
KD weight ``alpha`` grows as the kept fraction shrinks (the fewer the labels kept, the more the
teacher, which saw all of them, should speak).

The paper leaves the exact link between the kept fraction and ``alpha`` to a sweep per setting;
we fix a rule, :func:`kd_weight`, linear in the kept fraction ``f``:

    alpha(f) = alpha_empty - (alpha_empty - alpha_full) * f

with ``alpha_full`` the weight when everything is kept and ``alpha_empty`` the limit as ``f -> 0``.

Choice (``bench/distillation.py --tune``, ``bench/results/distillation_tuning.json``): on six
validation splits carved from the digits training split (3 seeds each; random pruning and the
recommended default at removed 0.3 / 0.5 / 0.7 / 0.9), 45 settings were compared: constant
weights 0.25 / 0.5 / 0.75 / 0.9, seven linear rules, temperatures 1 / 2 / 4 / 8. The best
constant weight per ratio rose with the fraction removed (0.25, 0.25, 0.5, 0.9), as Ben-Baruch
et al. found; the best setting overall was ``alpha = 1 - f`` (``alpha_full = 0``,
``alpha_empty = 1``: the weight is the fraction removed) at ``tau = 4``, mean validation
accuracy 95.76 % against 94.13 % without KD and 95.71 % for the best constant weight (0.5 at
tau = 8); tau = 8 ties the rule (95.75), the best settings at tau = 2 / 1 are 0.4 / 1.2 points
lower. The test split only reports it
(``bench/results/distillation.json``, README "Benchmarks").
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

#: KD weight when nothing is pruned, and its limit as the kept fraction goes to 0: together
#: ``alpha = 1 - f``, the fraction removed. See the module docstring for how they were chosen.
KD_WEIGHT_FULL = 0.0
KD_WEIGHT_EMPTY = 1.0
#: Softmax temperature of the teacher and the student in the soft term.
KD_TEMPERATURE = 4.0


def kd_weight(
    kept_fraction: float, *, at_full: float = KD_WEIGHT_FULL, at_empty: float = KD_WEIGHT_EMPTY
) -> float:
    """The KD weight ``alpha`` in [0, 1] for a subset that keeps ``kept_fraction`` of the data.

    Ben-Baruch et al. 2024 report a link between the pruning factor and the best KD weight: the
    teacher's term should weigh more as fewer samples are kept. Linear in the kept fraction, from
    ``at_empty`` (f -> 0) to ``at_full`` (f = 1); see the module docstring for the choice.
    """
    f = float(kept_fraction)
    if not 0.0 < f <= 1.0:
        raise ValueError(f"kept_fraction must be in (0, 1], got {kept_fraction}")
    for name, value in (("at_full", at_full), ("at_empty", at_empty)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}")
    return at_empty - (at_empty - at_full) * f


def distillation_loss(
    student_logits: torch.Tensor,
    labels: torch.Tensor,
    teacher_probs: torch.Tensor,
    *,
    alpha: float,
    temperature: float,
) -> torch.Tensor:
    """Per-row KD loss (B,): ``(1 - alpha) CE + alpha tau^2 KL(teacher_tau || student_tau)``.

    Parameters
    ----------
    student_logits : (B, C) raw student outputs.
    labels : (B,) int64 given labels.
    teacher_probs : (B, C) the teacher's probabilities already softened at ``temperature``
        (``softmax(teacher_logits / temperature)``), rows summing to 1.
    alpha : weight of the teacher's term in [0, 1]; 0 is plain cross-entropy.
    temperature : tau > 0.

    Lower is better; the KL term is 0 where the softened student equals the softened teacher.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    hard = F.cross_entropy(student_logits, labels, reduction="none")
    if alpha == 0.0:
        return hard
    log_student = F.log_softmax(student_logits / temperature, dim=1)
    kl = F.kl_div(log_student, teacher_probs, reduction="none").sum(dim=1)
    return (1.0 - alpha) * hard + alpha * temperature**2 * kl


def soften(teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``softmax(teacher_logits / temperature)`` (the soft targets :func:`distillation_loss` reads)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return F.softmax(teacher_logits / temperature, dim=1)
