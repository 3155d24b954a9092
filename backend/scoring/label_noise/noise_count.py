"""How many labels are wrong: the verdict's flag budget, and the posterior it ranks by.

The verdict combines the probes' out-of-fold probabilities P and the neighbours' label
distribution K into Q = w P + (1 - w) K, ranks the samples and flags the top ``n``. This module
estimates ``n``: in the first round (probes trained on the given labels) by confident learning
with a consensus fallback, in the cleaning rounds by an expected-F1 cut under the Bayes
posterior that each label is wrong, which is also what the cleaning rounds rank by.

Why confident learning's count alone falls short
------------------------------------------------
Confident learning (Northcutt, Jiang & Chuang 2021, JAIR 70, section 3.1) counts a sample
labelled i into class j when ``Q_j >= t_j``, with t_j the *mean* self-confidence of the samples
labelled j, then calibrates each row of the joint to the size of its given class. The count is
right when a mislabelled sample of true class j is as confident in j as the correctly labelled
members of j are. Class-dependent noise in which some classes *receive* labels from the others
breaks this twice: (a) a donor class d that loses 40 % of its samples has low confidence on
all its true members, and a mislabelled d sample (labelled as a receiver r) sits at about the
mean, so only about half of them pass t_d; (b) the receivers' thresholds t_r are pulled down
by their 25-30 % wrong members, so nearly all their clean members count on the diagonal. The
calibrated row then keeps about half of the true off-diagonal share: on digits pixels with
20 % of labels moved from five classes into the other five, 199-211 of 359 (the retraining round
starts from those flags, leaves the unflagged half in training and ends at the same count).

The alternatives read (measured on the validation draws below):

- Anchor points (Patrini et al. 2017, CVPR, "Making Deep Neural Networks Robust to Label Noise:
  a Loss Correction Approach"): T[k] = Q at the samples most confidently of class k. On
  probes trained on the noisy labels, the most confident samples overstate T_kk (the donor
  diagonal came out 0.77 where it is 0.60), so the count is still about half the truth.
  T-revision (Xia et al. 2019, NeurIPS) refines that T by training, which a count here cannot
  afford.
- HOC (Zhu, Song & Liu 2021, ICML, "Clusterability as an Alternative to Anchor Points When
  Learning with Noisy Labels"; the count of SimiFeat-R, Zhu et al. 2022): fit T and the clean
  prior to the first three orders of label consensus among 2-NN tuples. Within 3-8 % of the
  truth on digits, but biased upward wherever nearest neighbours differ in true class, and
  its (C, C, C) statistics do not scale to C in the hundreds.
- Consensus of the two detectors (the first round's fallback): a label is counted wrong when *both* the probes
  and the neighbours prefer another class (argmax of P and of K both differ from the given
  label), in the spirit of confident learning's ``both`` rule and of the cross-validated
  disagreement of INCV (Chen et al. 2019, ICML, "Understanding and Utilizing Deep Neural
  Networks Trained with Noisy Labels"). It makes no assumption on the thresholds, so the
  class-dependent case comes out within 3 % (368 of 359 on the issue's case); its error is a
  floor of clean, ambiguous samples both get wrong (10-20 on digits pixels, about 30 on HOG),
  which matters at low noise. Subtracting an estimate of that floor (the samples only the
  neighbours reject) fixed 5 % class-dependent noise on HOG but undercounted 15-25 % on pixels
  (the neighbours-only count is not stable across rounds), so the count is left as is.

The first-round rule (``consensus_switch``): take confident learning's count unless it is below
``agreement`` (0.8) times the consensus count; then confident learning's threshold assumption
is violated and the consensus count is used. On the validation draws (digits pixels, noise seed
100), the ratio CL / consensus was 0.89-1.0 for symmetric and pair noise, where CL is the more
accurate of the two (no floor), and 0.54-0.65 for class-dependent noise, the failure above; 0.8
lies between. It only chooses which rows the first cleaning round leaves out of training: as a
final count it switches, and near the switch (pixels, class-dependent 25-40 %) it keeps CL's
short count (299 of 361) or the consensus's floor (61 of 45 at 5 %).

The verdict's count: an expected-F1 cut (``expected_f1``)
----------------------------------------------------------
After a cleaning round the probes are trained without the previous round's flags, so their
out-of-fold P approximates the class posterior p(y | x) of *clean* labels (temperature-scaled on
the rows they kept, :func:`fit_temperature`, so that it is neither under- nor over-confident).
Under class-conditional noise (the given label depends on x only through the true class, the
assumption of confident learning and of Patrini et al. 2017) Bayes' rule then gives, per
sample, the posterior that its given label i is wrong:

    e = 1 - P_i T_ii / sum_j P_j T_ji,

with T[j, i] = P(given = i | true = j) (:func:`wrong_label_posterior`). T is estimated by
counting: T[j, i] = #{argmax P = j, given = i} / #{argmax P = j} (the probes' prediction stands in
for the true class; 1e-3 is added to every cell so that a class the probes never predict keeps a
defined, near-uniform row). Unlike the confident joint it has no per-class threshold for the
noise to pull down, and unlike the consensus count it discounts a doubt by how often noise takes
that direction: a clean sample split 50/50 between its class (T_ii = 0.95) and a class that
rarely gives it labels (T_ji = 0.01) keeps e = 0.01, where the consensus counts it wrong.

The budget is the k that maximises the plug-in expected F1 of flagging the top k of the
ranking, 2 sum_{top k} e / (k + sum_all e) (Jansche 2007, "A Maximum Expected Utility Framework
for Binary Sequence Labeling", ACL; Nan, Chai, Lee & Chieu 2012, "Optimizing F-measure: A Tale of
Two Approaches", ICML): :func:`expected_f1_cut`. It needs no threshold: with calibrated e the
cut falls where e crosses half the best F1 (Lipton, Elkan & Naryanaswamy 2014). For the count, e
is the mean of two such posteriors, one with the probes' P and one with the combined posterior
Q = (P + K) / 2 (K the neighbours' label shares); the verdict ranks by the one on Q
(``verdict.combine_signals``, ``score_rule="wrong_posterior"``).

Chosen on validation draws 100-102 (pixels and HOG, every family and rate; never the reported
draws), first on the signals of one cleaning round against the best k in hindsight (79 runs
with AP >= 0.98): P alone overshoots at 5 % noise (100 flags for 90), Q alone undershoots at
35-45 %; mean F1 gap to the best k 0.0045 (P), 0.0047 (Q), 0.0035 (their mean), 0.0245 for the
first-round rule. Also measured and not chosen: the expected count sum(e) as the budget (gap
0.011 with P, 0.020 with Q), e > 0.5 (0.0092), EM re-estimation of T with soft assignments
(Dawid & Skene 1979; 0.0046, iterative for no gain), and a product of experts P K (0.0074). Then
end to end with two cleaning rounds (71 runs): ranking by e on Q instead of the margin raised the
mean F1 from 0.941 to 0.954 and F1 >= 0.95 from 51 of 59 to 60 of 64 runs with AP >= 0.98 (HOG
class-dependent noise most: the margin cannot tell a likely flip from one that never happens).
Temperature scaling left digits unchanged (mean F1 0.9420 -> 0.9406 on one round's signals; the
fitted T was 0.6-0.95) and keeps a weak probe usable: on three blobs with a 20-epoch, 16-unit
probe the flags went from 9 to 11 of 12 wrong labels, precision 1.

Why not in the first round as well: with probes trained on the noisy labels P already carries
the noise, and Bayes' rule counts it twice. On look-alike pairs at 35-45 % every clean sample
gets e near 0.2 and the cut took 1,100-1,570 of 1,797 rows (the cleaning round recovered, but
it trained on an eighth of the data). The reported tables are in
``bench/results/label_noise_families.json``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from backend.scoring.class_columns import softmax
from backend.scoring.label_noise.confident_learning import normalized_margin, num_label_issues
from backend.scoring.vectors import row_blocks

DEFAULT_AGREEMENT = 0.8
#: ``consensus_switch``: the first-round rule; ``expected_f1``: the cut on the cleaning round.
COUNT_RULES = ("consensus_switch", "expected_f1")
_PSEUDO_COUNT = 1e-3  # per cell of the counted transition (see the module docstring)


class IssueCount(NamedTuple):
    """``n_issues`` the flag budget; ``confident_learning`` and ``consensus`` the first-round
    estimates (``consensus`` None with a single signal; both None under ``expected_f1``, which
    does not compute them); ``expected`` the expected number of wrong labels sum(e) under
    ``expected_f1`` (None otherwise); ``rule`` which estimate was used (``confident_learning``,
    ``consensus`` or ``expected_f1``)."""

    n_issues: int
    confident_learning: int | None
    consensus: int | None
    rule: str
    expected: float | None = None


def consensus_count(given_labels: np.ndarray, pred_probs: np.ndarray, knn_distribution: np.ndarray) -> int:
    """Number of samples whose given label loses under both signals: another class has strictly
    more mass than ``given_labels`` (N,) in ``pred_probs`` (N, C) and in ``knn_distribution``
    (N, C) (a tie with the given label counts as agreement)."""
    given = np.asarray(given_labels).astype(np.int64)
    rows = np.arange(given.size)
    losing = np.ones(given.size, bool)
    for dist in (np.asarray(pred_probs), np.asarray(knn_distribution)):
        others = dist.copy()
        others[rows, given] = -np.inf
        losing &= others.max(axis=1) > dist[rows, given]
    return int(losing.sum())


def counted_transition(given_labels: np.ndarray, class_probs: np.ndarray) -> np.ndarray:
    """T[j, i] ~ P(given = i | true = j), (C, C) rows summing to 1: the share of label i among the
    samples whose argmax of ``class_probs`` (N, C) is j, plus a pseudo-count of 1e-3 per cell."""
    given = np.asarray(given_labels).astype(np.int64)
    probs = np.asarray(class_probs)
    c = probs.shape[1]
    counts = np.bincount(probs.argmax(axis=1) * c + given, minlength=c * c).reshape(c, c) + _PSEUDO_COUNT
    return counts / counts.sum(axis=1, keepdims=True)


def wrong_label_posterior(given_labels: np.ndarray, class_probs: np.ndarray,
                          transition: np.ndarray | None = None) -> np.ndarray:
    """(N,) posterior that each given label is wrong, 1 - P_i T_ii / sum_j P_j T_ji (Bayes' rule
    under class-conditional noise; see the module docstring).

    ``class_probs`` (N, C): an estimate of the clean class posterior p(y | x); ``transition``
    (C, C) T[true, given], default :func:`counted_transition`. Computed in blocks of rows, so the
    (rows, C) temporaries stay small at a million samples.
    """
    given = np.asarray(given_labels).astype(np.int64)
    probs = np.asarray(class_probs, dtype=np.float64)
    if probs.ndim != 2 or given.shape != (probs.shape[0],):
        raise ValueError(f"need labels (N,) and class probabilities (N, C), got {given.shape} and {probs.shape}")
    t = counted_transition(given, probs) if transition is None else np.asarray(transition, dtype=np.float64)
    out = np.empty(given.size)
    for rows in row_blocks(given.size):
        g, p = given[rows], probs[rows]
        evidence = np.einsum("nj,jn->n", p, t[:, g])  # sum_j P_j T[j, given]
        own = p[np.arange(g.size), g] * t[g, g]
        out[rows] = 1.0 - own / np.maximum(evidence, 1e-300)
    return np.clip(out, 0.0, 1.0)


def expected_f1_cut(wrong_posterior: np.ndarray, order: np.ndarray) -> int:
    """The k that maximises 2 sum_{top k} e / (k + sum e) (the plug-in expected F1 of flagging
    the first k of ``order``, (N,) indices best-first) for ``wrong_posterior`` e (N,); 0 when no
    sample is likely wrong at all (sum e ~ 0)."""
    e = np.asarray(wrong_posterior, dtype=np.float64)
    total = e.sum()
    if e.size == 0 or total < 0.5:  # less than half a wrong label expected: flag nothing
        return 0
    gain = np.cumsum(e[np.asarray(order)])
    expected_f1 = 2.0 * gain / (np.arange(1, e.size + 1) + total)
    return int(np.argmax(expected_f1)) + 1


def estimate_issue_count(
    given_labels: np.ndarray,
    posterior: np.ndarray,
    *,
    pred_probs: np.ndarray | None = None,
    knn_distribution: np.ndarray | None = None,
    agreement: float = DEFAULT_AGREEMENT,
    rule: str = "consensus_switch",
    order: np.ndarray | None = None,
    wrong_posterior: np.ndarray | None = None,
) -> IssueCount:
    """Estimated number of wrong labels (the verdict's flag budget); see the module docstring.

    Parameters
    ----------
    given_labels
        (N,) ints in [0, C).
    posterior
        (N, C) the combined posterior the verdict ranks by (confident learning's count is taken
        on it).
    pred_probs, knn_distribution
        (N, C) the two signals; with only one, confident learning's count is returned (first
        rule) or the posterior stands in for P (``expected_f1``).
    agreement
        In [0, 1]: the consensus count replaces confident learning's when CL < agreement x
        consensus (0 = always CL); ``consensus_switch`` only.
    rule
        ``consensus_switch`` (probes trained on the given labels: the first round) or
        ``expected_f1`` (probes trained without the first round's flags).
    order
        (N,) the ranking, best-first (``expected_f1`` only; default: by the posterior's margin).
    wrong_posterior
        (N,) :func:`wrong_label_posterior` of ``posterior`` when the caller has it already
        (``expected_f1`` only; default: computed here).

    Algorithm
    ---------
    ``consensus_switch``:
    1. n_CL = off-diagonal mass of the calibrated confident joint of the posterior, times N.
    2. n_both = samples whose given label loses under the probes and under the neighbours.
    3. n = n_both if n_CL < agreement * n_both else n_CL.

    ``expected_f1``:
    1. e = mean of :func:`wrong_label_posterior` on P and on the posterior (P alone without it).
    2. n = :func:`expected_f1_cut` of e along ``order``.
    """
    if rule not in COUNT_RULES:
        raise ValueError(f"unknown count rule {rule!r}; choose one of {', '.join(COUNT_RULES)}")
    if not 0.0 <= agreement <= 1.0:
        raise ValueError(f"agreement must lie in [0, 1], got {agreement}")
    both_signals = pred_probs is not None and knn_distribution is not None
    if rule == "expected_f1":
        wrong = wrong_label_posterior(given_labels, posterior) if wrong_posterior is None else wrong_posterior
        if both_signals:
            wrong = 0.5 * (wrong + wrong_label_posterior(given_labels, pred_probs))
        if order is None:
            order = np.argsort(normalized_margin(given_labels, posterior), kind="stable")
        return IssueCount(expected_f1_cut(wrong, order), None, None, "expected_f1", float(wrong.sum()))
    n_cl = num_label_issues(given_labels, posterior)
    if not both_signals:
        return IssueCount(n_cl, n_cl, None, "confident_learning")
    n_both = consensus_count(given_labels, pred_probs, knn_distribution)
    if n_cl < agreement * n_both:
        return IssueCount(n_both, n_cl, n_both, "consensus")
    return IssueCount(n_cl, n_cl, n_both, "confident_learning")


def fit_temperature(class_probs: np.ndarray, labels: np.ndarray, rows: np.ndarray | None = None, *,
                    max_rows: int = 100_000) -> float:
    """Temperature T > 0 that maximises the likelihood of ``labels`` under ``class_probs`` ** (1/T)
    renormalised (temperature scaling, Guo, Pleiss, Sun & Weinberger 2017, "On Calibration of
    Modern Neural Networks", ICML), fitted on ``rows`` (bool (N,), default all), at most
    ``max_rows`` of them (evenly spaced); 1.0 when no row is given. T < 1 sharpens
    under-confident probabilities.

    The cleaning rounds fit it on the rows they kept (whose labels are presumed right), so that
    the Bayes posterior of :func:`wrong_label_posterior` does not inherit the probes' under- or
    over-confidence: with a weak probe (a few epochs, a linear probe at scale) an obvious
    mislabel otherwise keeps p(given) near 0.1 and a wrong-label posterior under one half.
    """
    from scipy.optimize import minimize_scalar

    probs = np.asarray(class_probs)
    given = np.asarray(labels).astype(np.int64)
    index = np.arange(given.size) if rows is None else np.flatnonzero(rows)
    if index.size == 0:
        return 1.0
    if index.size > max_rows:
        index = index[np.linspace(0, index.size - 1, max_rows).astype(np.int64)]
    log_p = np.log(np.clip(probs[index].astype(np.float64), 1e-12, None))
    own = log_p[np.arange(index.size), given[index]]

    def neg_log_likelihood(log_t: float) -> float:
        z = log_p / np.exp(log_t)
        top = z.max(axis=1)
        return float(-(own / np.exp(log_t) - top - np.log(np.exp(z - top[:, None]).sum(axis=1))).mean())

    # log T in [-3, 3]: T from 0.05 to 20, far beyond what a trained probe needs
    return float(np.exp(minimize_scalar(neg_log_likelihood, bounds=(-3.0, 3.0), method="bounded").x))


def tempered(class_probs: np.ndarray, temperature: float, *, out: np.ndarray | None = None) -> np.ndarray:
    """``class_probs`` (N, C) ** (1 / temperature), rows renormalised; float32, block by block
    (``out`` may be ``class_probs`` itself when it is float32: no second (N, C) array)."""
    probs = np.asarray(class_probs)
    out = np.empty(probs.shape, np.float32) if out is None else out
    for rows in row_blocks(probs.shape[0]):
        out[rows] = softmax(np.log(np.clip(probs[rows].astype(np.float64), 1e-12, None)) / temperature)
    return out
