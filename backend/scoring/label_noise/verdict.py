"""One label-noise verdict per sample, combining confident learning, kNN voting and AUM.

Detectors (each also reported on its own, see ``DETECTORS``):

- ``confident_learning``: Northcutt et al. 2021 on the probes' out-of-fold probabilities
  (``find_label_issues``, ``prune_by_noise_rate`` by default).
- ``knn_vote``: SimiFeat-V (Zhu et al. 2022), cosine 10-NN plurality vote on the embeddings.
- ``aum``: Pleiss et al. 2020, threshold samples, 99th percentile, two runs (optional).

The combination (chosen on ``bench/label_noise.py``, digits with 10 % / 30 % symmetric and 20 %
asymmetric noise, four noise seeds; see ``bench/results/label_noise.json``):

1. **Posterior.** Q = w P + (1 - w) K with P the probes' out-of-fold probabilities (MLP probe,
   5 folds x 3 seeds, ``ProbeConfig()`` defaults) and K the neighbours' label distribution,
   w = 0.5. The two make different mistakes: the probe generalises across the whole class but
   learns systematic flips (asymmetric noise), the neighbours are local and ignore them.
2. **Ranking, not argmax** (the first round). Score = 1 - normalised margin of Q at the given
   label (in [0, 1], higher = more likely wrong). Flag the top ``n`` scores, where ``n`` is confident learning's
   estimate of the number of wrong labels (off-diagonal mass of the calibrated confident joint
   of Q, times N), never a sample whose given label strictly wins under Q. Where that count is
   below 0.8 times the number of samples both P and K reject (class-dependent noise pulls its
   thresholds down), that consensus count is the budget instead (``noise_count``). Ranking by
   margin beats "argmax differs" (whose false positives are the clean samples the model gets
   wrong).
3. **Cleaning rounds until the flags settle** (``refine=5`` at most, ``refine_tolerance``). Retrain
   the probes with the flagged rows left out of every training fold (predictions still for every
   row, each from a probe that did not see it), temperature-scale them on the kept rows, recompute
   K with the flagged neighbours' labels replaced by their suggested labels, and combine again.
   With probes trained on cleaned labels P estimates the clean class posterior, so a cleaning round
   scores each sample by the Bayes posterior that its label is wrong under the noise transition
   counted from the probes' predictions (``label_issue_score`` in [0, 1], the probability the label
   is wrong) and flags the top k that maximise the expected F1 (``noise_count``:
   ``wrong_posterior``, ``expected_f1``); the first round's margin and count only choose what the
   first cleaning round leaves out. Cleaner training data makes a better probe (accuracy 96 % ->
   97.5 % at 10 % noise; at 20 % asymmetric noise it no longer learns the flip), and each round's
   flags clean the next round's training rows. The rounds repeat until one changes at most
   max(1, 2 % of the flagged) flags, 5 rounds at most (validation numbers in
   :func:`backend.scoring.label_noise.pipeline.flags_settled`: mean F1 0.954 with two rounds ->
   0.963, 3.1 rounds on average; heavy look-alike-pair noise runs all 5). The posterior ranks above
   the margin because it knows which way the noise goes: a sample labelled r that looks like d is a
   likely flip where d often gives r its labels and an unlikely one where it never does; the margin
   ties the two.
4. AUM does not enter the score by default (``aum_weight=0``): as a ranking it helps a little on
   symmetric noise and hurts on asymmetric noise (it trains on the noisy labels and memorises
   the systematic flip). It is still computed and reported as a detector.

``agreed`` is a bitmask over ``DETECTORS`` (bit i set = detector i flagged the sample);
:func:`detector_names` decodes it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from backend.scoring.class_columns import best_other
from backend.scoring.label_noise.confident_learning import normalized_margin
from backend.scoring.label_noise.noise_count import (
    DEFAULT_AGREEMENT,
    estimate_issue_count,
    wrong_label_posterior,
)
from backend.scoring.ranks import rank_quantile

log = logging.getLogger(__name__)

DETECTORS = ("confident_learning", "knn_vote", "aum")
#: ``margin``: 1 - normalised margin (first round); ``wrong_posterior``: the Bayes posterior that
#: the label is wrong (cleaning rounds); see :func:`combine_signals`.
SCORE_RULES = ("margin", "wrong_posterior")


@dataclass(frozen=True)
class CombinedFlags:
    """Output of :func:`combine_signals` (N samples, C classes).

    ``posterior`` (N, C) combined class probabilities, rows sum to 1. ``label_issue_score`` (N,)
    in [0, 1], higher = more likely wrong. ``is_label_issue`` (N,) bool. ``suggested_label`` (N,):
    the best class other than the given one where flagged, else the given label.
    ``n_issues``: the estimated number of wrong labels used as the flag budget.
    """

    posterior: np.ndarray
    label_issue_score: np.ndarray
    is_label_issue: np.ndarray
    suggested_label: np.ndarray
    n_issues: int


@dataclass(frozen=True)
class LabelIssueVerdict:
    """The per-sample verdict (N samples).

    ``label_issue_score`` (N,) in [0, 1], higher = more likely wrong; ``is_label_issue`` (N,)
    bool; ``suggested_label`` (N,) int (the given label where not flagged); ``agreed`` (N,) int
    bitmask over ``DETECTORS``; ``detector_flags`` / ``detector_scores``: per detector (N,) bool
    flags and (N,) scores in [0, 1] (higher = more likely wrong); ``n_issues``: flag budget;
    ``cleaning_rounds``: how many cleaning rounds ran (0: the first round is the verdict).
    """

    label_issue_score: np.ndarray
    is_label_issue: np.ndarray
    suggested_label: np.ndarray
    agreed: np.ndarray
    detector_flags: dict[str, np.ndarray]
    detector_scores: dict[str, np.ndarray]
    n_issues: int
    posterior: np.ndarray = field(repr=False)
    cleaning_rounds: int = 0


def detector_names(agreed: int) -> list[str]:
    """Decode one ``agreed`` bitmask into detector names, in ``DETECTORS`` order."""
    return [name for bit, name in enumerate(DETECTORS) if int(agreed) >> bit & 1]


def detector_texts(agreed: np.ndarray) -> np.ndarray:
    """(N,) object array of comma-joined :func:`detector_names` for (N,) bitmasks (one lookup
    table of the 2^len(DETECTORS) texts, not one decode per sample)."""
    table = np.array([",".join(detector_names(v)) for v in range(1 << len(DETECTORS))], dtype=object)
    return table[np.asarray(agreed, dtype=np.int64)]


def agreement_bitmask(detector_flags: dict[str, np.ndarray]) -> np.ndarray:
    """(N,) int64 bitmask: bit i set where ``DETECTORS[i]`` flagged the sample."""
    n = len(next(iter(detector_flags.values())))
    mask = np.zeros(n, np.int64)
    for bit, name in enumerate(DETECTORS):
        if name in detector_flags:
            mask |= np.asarray(detector_flags[name], bool).astype(np.int64) << bit
    return mask


def combine_signals(
    given_labels: np.ndarray,
    *,
    pred_probs: np.ndarray | None = None,
    knn_distribution: np.ndarray | None = None,
    probe_weight: float = 0.5,
    extra_scores: np.ndarray | None = None,
    extra_weight: float = 0.0,
    n_issues: int | None = None,
    count_agreement: float = DEFAULT_AGREEMENT,
    count_rule: str = "consensus_switch",
    score_rule: str = "margin",
) -> CombinedFlags:
    """Steps 1-2 of the module docstring on given signals; pure.

    Parameters
    ----------
    given_labels
        (N,) ints in [0, C).
    pred_probs, knn_distribution
        (N, C) class probabilities from a model (out-of-fold) and from neighbour votes; at least
        one. ``probe_weight`` in [0, 1] is the model's share when both are given.
    extra_scores, extra_weight
        Optional (N,) score, higher = more likely wrong (e.g. minus AUM), mixed in by rank with
        weight ``extra_weight`` in [0, 1] (changes the ranking only, not the flag budget).
    n_issues
        Flag budget; default: :func:`backend.scoring.label_noise.noise_count.estimate_issue_count`
        with ``count_rule``: ``consensus_switch`` (confident learning's count on the combined
        posterior, or the count of samples both signals reject where confident learning's is
        below ``count_agreement`` times that; for probes trained on the given labels) or
        ``expected_f1`` (the expected-F1 cut under the Bayes posterior that each label is wrong;
        for probes trained on cleaned labels).
    score_rule
        ``margin``: ``label_issue_score`` = 1 - normalised margin of the posterior (first round);
        ``wrong_posterior``: the Bayes posterior that the given label is wrong under the counted
        noise transition (:func:`backend.scoring.label_noise.noise_count.wrong_label_posterior`;
        cleaning rounds). Either way no sample whose given label strictly wins is flagged.
    """
    if pred_probs is None and knn_distribution is None:
        raise ValueError("combine_signals needs pred_probs, knn_distribution or both")
    if not 0.0 <= probe_weight <= 1.0 or not 0.0 <= extra_weight <= 1.0:
        raise ValueError("probe_weight and extra_weight must lie in [0, 1]")
    given = np.asarray(given_labels).astype(np.int64)
    if pred_probs is None:
        posterior = np.asarray(knn_distribution, dtype=np.float64)
    elif knn_distribution is None:
        posterior = np.asarray(pred_probs, dtype=np.float64)
    else:
        # w P + (1 - w) K summed in place: one (N, C) float64 temporary less (0.8 GB at 1M x 100)
        posterior = probe_weight * np.asarray(pred_probs, dtype=np.float64)
        posterior += (1.0 - probe_weight) * np.asarray(knn_distribution, dtype=np.float64)
    if score_rule not in SCORE_RULES:
        raise ValueError(f"unknown score rule {score_rule!r}; choose one of {', '.join(SCORE_RULES)}")
    margin_score = 1.0 - normalized_margin(given, posterior)
    score = margin_score if score_rule == "margin" else wrong_label_posterior(given, posterior)
    ranking = score
    if extra_scores is not None and extra_weight > 0:
        ranking = (1 - extra_weight) * rank_quantile(score) + extra_weight * rank_quantile(extra_scores)
    order = np.argsort(-ranking, kind="stable")
    if n_issues is None:
        budget = estimate_issue_count(given, posterior, pred_probs=pred_probs, knn_distribution=knn_distribution,
                                      agreement=count_agreement, rule=count_rule, order=order,
                                      wrong_posterior=score if score_rule == "wrong_posterior" else None).n_issues
    else:
        budget = int(n_issues)
    flags = np.zeros(given.size, bool)
    flags[order[: max(budget, 0)]] = True
    flags &= margin_score >= 0.5  # never flag a sample whose given label strictly wins
    # on our own posterior (both signals given) the given column is masked in place, not on an
    # (N, C) copy
    own_posterior = pred_probs is not None and knn_distribution is not None
    suggested = np.where(flags, best_other(posterior, given, in_place=own_posterior)[1], given)
    return CombinedFlags(posterior, score, flags, suggested, budget)
