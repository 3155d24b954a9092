"""SIMS importance sampling (the ``sims`` method, ``sims:<score>``): a pruning procedure adaptive to
the ratio, usable over any score.

Grosz et al. 2024 (below) also define the SIM *score* (separability, integrity, model
certainty), which is the ``sim`` score in :mod:`backend.scoring.pruning.sim_score`. The two are
separate modules because they are separate things in the registry: this procedure samples over whatever score it
is given (the default runs it over the AUM + EL2N ``ensemble``, not over ``sim``), and ``sim`` is
one score among the others, usable by any procedure.

Grosz et al. 2024, "Data Pruning via Separability, Integrity, and Model Uncertainty-Aware
Importance Sampling" (arXiv 2409.13915). The paper samples the kept set from a distribution
whose shape depends on the pruning ratio (hard samples when pruning little, easier and more
representative ones when pruning a lot: a small subset needs the bulk of each class, Sorscher
et al. 2022), with a class-dependent (intra-class) and a class-independent (inter-class) term.
It leaves the exact distribution open. The choices made here (the tuned ones on a validation
split carved from the digits training split, ``bench/pruning.py --tune``, never the test split):

* **Intra-class term.** Inside each class, samples are grouped into coverage strata: k-means on
  the embeddings. How many strata depends on the ratio r (``SimsSampling.n_strata``): one (a
  plain hardness ranking, which is what works when data is plentiful) below
  ``coverage_start`` = 0.6, then a share of one stratum per kept sample growing linearly to
  all of them at ``coverage_full`` = 0.95 (capped at ``max_strata``; the quota is spread evenly
  over the strata, smallest first, as CCS does with score strata). Every stratum
  contributes its best sample under the preference
  ``pref = lam(r) * hardness - (1 - lam(r)) * atypicality``, both rank quantiles inside the
  stratum (hardness from the score, atypicality = distance to the stratum centroid).
  ``lam(r)`` is 1 (keep hard) up to the ratio ``knee`` and falls linearly to ``lam_end`` at
  r = 1 (keep typical, TypiClust-like, Hacohen et al. 2022). The strata are our addition: on
  digits, keep-hard top-k collapses at high ratios for lack of coverage (CCS's diagnosis);
  strata give coverage in embedding space rather than in score space.
* **Inter-class term.** Class quotas follow the per-class policy, tilted towards harder
  classes: weight_c = n_c * (2 * mean global hardness quantile of c) ** class_tilt.
  ``class_tilt = 0`` is the plain policy.
* **Sampling.** Inside a stratum the pick is the arg-max of pref + temperature * Gumbel noise
  (Gumbel-max: a draw with probability proportional to exp(pref / temperature)); temperature 0
  is deterministic. Seeded.
* **Hard cut-off.** The ``beta`` hardest fraction (global quantile) is dropped first, as in CCS
  (default 0: digits has no label noise to cut; the cut never removes below the budget). Label
  noise is handled before any procedure runs instead: ``thresher prune`` removes the samples
  the label-noise verdict flags (:mod:`backend.scoring.pruning.exclusions`), which drops the
  noise itself rather than a fixed share of the hardest samples.

Tuning: on validation splits carved from the digits training split, never the test split
(``bench/pruning.py --select``, ``--tune`` and ``--alternatives``; criterion: the worst margin
over r in {0.3, 0.5, 0.7, 0.9} against the best anchor at that r, then the mean margin). The
ramp (``coverage_start`` 0.6, ``coverage_full`` 0.95, ``knee`` 0.7) keeps keep-hard's lead at
r <= 0.5 and coverage's at r = 0.9; the AUM + EL2N rank ensemble came first among 11 scores and
blends; ``temperature`` and ``lam_end`` were not tuned (0, 0: deterministic); no alternative
(``beta`` > 0, ``class_tilt`` > 0, strata at every ratio, other blends, D2) beat the defaults
beyond noise at every ratio. The rounds, grids and margins are in ``bench/results/NOTES.md``
and the ``pruning_*.json`` files named there.
Test-split results are in the README's Benchmarks section.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from backend.scoring.pruning._common import check_embeddings, l2_normalize, rank_quantile
from backend.scoring.pruning.budgets import allocate, n_to_keep, parse_policy
from backend.scoring.pruning.procedures import _check_difficulty, select


@dataclass(frozen=True)
class SimsSampling:
    """Shape of the SIMS sampling distribution (module docstring)."""

    knee: float = 0.7
    lam_end: float = 0.0
    temperature: float = 0.0
    max_strata: int = 512
    class_tilt: float = 0.0
    beta: float = 0.0
    coverage_start: float = 0.6
    coverage_full: float = 0.95

    def __post_init__(self) -> None:
        if not 0.0 <= self.knee <= 1.0:
            raise ValueError(f"knee must lie in [0, 1], got {self.knee}")
        if not 0.0 <= self.lam_end <= 1.0:
            raise ValueError(f"lam_end must lie in [0, 1], got {self.lam_end}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.max_strata < 1:
            raise ValueError(f"max_strata must be >= 1, got {self.max_strata}")
        if not 0.0 <= self.beta < 1.0:
            raise ValueError(f"beta must lie in [0, 1), got {self.beta}")
        if not 0.0 <= self.coverage_start <= 1.0:
            raise ValueError(f"coverage_start must lie in [0, 1], got {self.coverage_start}")
        if not 0.0 <= self.coverage_full <= 1.0:
            raise ValueError(f"coverage_full must lie in [0, 1], got {self.coverage_full}")

    def n_strata(self, budget: int, ratio: float) -> int:
        """Coverage strata for a class keeping ``budget``: one (a plain ranking) below
        ``coverage_start``; from there a growing share of one per kept sample, reaching it at
        ``coverage_full`` (a step when ``coverage_full <= coverage_start``); at most
        ``max_strata``."""
        if ratio < self.coverage_start:
            return 1
        share = 1.0
        if ratio < self.coverage_full:
            share = (ratio - self.coverage_start) / (self.coverage_full - self.coverage_start)
        return max(1, min(int(round(budget * share)), self.max_strata))

    def hardness_weight(self, ratio: float) -> float:
        """lam(r): 1 up to ``knee``, then linear down to ``lam_end`` at r = 1."""
        if ratio <= self.knee or self.knee >= 1.0:
            return 1.0
        return 1.0 - (ratio - self.knee) / (1.0 - self.knee) * (1.0 - self.lam_end)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


DEFAULT_SIMS_SAMPLING = SimsSampling()


def stratum_pick(
    members: np.ndarray,
    hardness: np.ndarray,
    distance: np.ndarray,
    k: int,
    lam: float,
    temperature: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """The k best members of one stratum under lam * hardness - (1 - lam) * atypicality
    (+ temperature * Gumbel); ``hardness``/``distance`` are aligned with ``members``."""
    if k >= members.size:
        return members
    pref = lam * rank_quantile(hardness) - (1.0 - lam) * rank_quantile(distance)
    if temperature > 0:
        pref = pref + temperature * rng.gumbel(size=members.size)
    return members[np.argsort(-pref, kind="stable")[:k]]


def stratified_select(
    candidates: np.ndarray,
    budget: int,
    rng: np.random.Generator,
    *,
    difficulty: np.ndarray,
    embeddings: np.ndarray | None,
    lam: float,
    params: SimsSampling,
    ratio: float = 1.0,
) -> np.ndarray:
    """Coverage-stratified selection of ``budget`` of ``candidates`` (one class, usually).

    Algorithm
    ---------
    1. S = ``params.n_strata(budget, ratio)`` k-means strata over the candidates' embeddings
       (no embeddings: one stratum, distance = 0).
    2. Stratum quotas: equal shares capped at the stratum size, water-filled (smallest first).
    3. Each stratum keeps its best members by :func:`stratum_pick`.
    """
    from backend.scoring.pruning.geometry_scores import kmeans

    if budget >= candidates.size:
        return candidates.copy()
    if embeddings is None:
        zeros = np.zeros(candidates.size)
        return stratum_pick(
            candidates, difficulty[candidates], zeros, budget, lam, params.temperature, rng
        )
    x = embeddings[candidates]
    n_strata = params.n_strata(budget, ratio)
    assign, centroids = kmeans(x, n_strata, seed=int(rng.integers(2**31)))
    distance = np.linalg.norm(x - centroids[assign], axis=1)
    sizes = np.bincount(assign, minlength=centroids.shape[0])
    present = np.flatnonzero(sizes)
    quotas = allocate(sizes[present], np.ones(present.size), budget)
    chosen = []
    for stratum, quota in zip(present, quotas, strict=True):
        rows = np.flatnonzero(assign == stratum)
        if quota:
            picked = stratum_pick(
                rows, difficulty[candidates[rows]], distance[rows], int(quota), lam,
                params.temperature, rng,
            )  # fmt: skip
            chosen.append(candidates[picked])
    return np.concatenate(chosen)


def class_weights(
    difficulty: np.ndarray, labels: np.ndarray, *, tilt: float, policy: str
) -> dict[int, float]:
    """Inter-class term: n_c (or 1 for balanced) * (2 * mean global hardness quantile) ** tilt."""
    q = rank_quantile(difficulty)
    out = {}
    for cls in np.unique(labels):
        members = labels == cls
        base = float(members.sum()) if policy == "proportional" else 1.0
        out[int(cls)] = base * float(2.0 * q[members].mean() + 1e-9) ** tilt
    return out


def sims_sample(
    difficulty: np.ndarray,
    ratio: float,
    *,
    embeddings: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    per_class: str = "proportional",
    seed: int = 0,
    exclude: np.ndarray | None = None,
    params: SimsSampling = DEFAULT_SIMS_SAMPLING,
) -> np.ndarray:
    """SIMS importance-sampling pruning over any difficulty score (higher = harder).

    ``ratio`` is the fraction REMOVED; ``embeddings`` (N, D) give the coverage strata
    (L2-normalised here; None = no strata). Returns sorted int64 kept indices.

    Algorithm
    ---------
    1. Drop the ``beta`` hardest (global quantile) into ``exclude``.
    2. lam = ``params.hardness_weight(ratio)``.
    3. Class quotas from the per-class policy tilted by :func:`class_weights`, then
       :func:`stratified_select` inside each class (or over all samples with ``"none"``).
    """
    d = _check_difficulty(difficulty)
    n = d.size
    n_keep = n_to_keep(n, ratio)
    x = None if embeddings is None else l2_normalize(check_embeddings(embeddings))
    if x is not None and x.shape[0] != n:
        raise ValueError(f"embeddings have {x.shape[0]} rows but difficulty has {n}")
    mask = np.zeros(n, dtype=bool) if exclude is None else np.asarray(exclude, dtype=bool).copy()
    if params.beta > 0:  # cut only among the samples still available, never below the budget
        available = np.flatnonzero(~mask)
        n_cut = max(0, min(int(np.floor(params.beta * n)), available.size - n_keep))
        mask[available[np.argsort(-d[available], kind="stable")[:n_cut]]] = True
    lam = params.hardness_weight(float(ratio))

    def pick(idx: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
        return stratified_select(idx, k, rng, difficulty=d, embeddings=x, lam=lam, params=params,
                                 ratio=float(ratio))

    policy, min_per_class = parse_policy(per_class)
    if labels is None or policy == "none" or params.class_tilt == 0:
        return select(n, ratio, pick, labels=labels, per_class=per_class, seed=seed, exclude=mask)
    y = np.asarray(labels)
    weights = class_weights(d, y, tilt=params.class_tilt, policy=policy)
    classes = np.array(sorted(weights))
    avail = np.array([int(((y == c) & ~mask).sum()) for c in classes])
    quota = allocate(
        avail, np.array([weights[c] for c in classes]), min(n_keep, int(avail.sum())),
        np.full(classes.size, min_per_class),
    )  # fmt: skip
    kept = []
    for cls, q in zip(classes, quota, strict=True):
        if q:
            members = np.flatnonzero((y == cls) & ~mask)
            kept.append(pick(members, int(q), np.random.default_rng([seed & 0xFFFFFFFF, cls + 1])))
    out = np.concatenate(kept)
    if out.size < n_keep:  # more excluded than the ratio removes: refill at random
        rest = np.setdiff1d(np.arange(n), out)
        extra = np.random.default_rng([seed & 0xFFFFFFFF, 0]).choice(
            rest, n_keep - out.size, replace=False
        )
        out = np.concatenate([out, extra])
    return np.sort(out).astype(np.int64)
