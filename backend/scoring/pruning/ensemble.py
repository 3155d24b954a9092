"""Rank ensembles of pruning scores: the mean of each score's rank quantile.

Not from one paper: a documented choice of this engine. Single-score rankings of "hard" samples
are noisy (one training run, one reading time), and scores that measure the same thing at
different moments disagree mostly on that noise: AUM (Pleiss et al. 2020) averages the logit
margin over every epoch, EL2N (Paul et al. 2021) reads the error vector early in training. The
mean of their rank quantiles keeps what they agree on. Ranks rather than raw values because
the scales differ (AUM is an unbounded logit margin, EL2N lies in [0, sqrt 2]) and ranks are
all that top-k and SIMS sampling read.

Evidence (``bench/pruning.py``; chosen on six validation splits carved from the digits training
split, never on the test split): as the score of SIMS sampling, the AUM + EL2N ensemble had the
best worst-case margin over the anchors across removed fractions 0.3-0.9 of every single score
and blend tried (SIM, AUM, EL2N, TDDS and their blends); see the README's Benchmarks section.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from backend.scoring.pruning._common import rank_quantile

#: The parts of each registered ensemble score (each oriented higher = harder before ranking).
ENSEMBLES: dict[str, tuple[str, ...]] = {"ensemble": ("aum", "el2n")}


def rank_ensemble(difficulties: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """Weighted mean of the rank quantiles of K difficulty arrays (each higher = harder).

    Parameters
    ----------
    difficulties : K arrays of shape (N,), each oriented so that higher = harder.
    weights : K non-negative weights (default equal); normalised to sum 1.

    Returns
    -------
    (N,) float64 in [0, 1]. Higher = harder / more important to keep. Ties keep equal values.
    """
    parts = [np.asarray(d, dtype=np.float64) for d in difficulties]
    if not parts:
        raise ValueError("an ensemble needs at least one score")
    n = parts[0].shape
    if any(p.ndim != 1 or p.shape != n for p in parts):
        raise ValueError(f"every score must be a 1-D array of the same length, got {[p.shape for p in parts]}")
    if any(not np.isfinite(p).all() for p in parts):
        raise ValueError("scores must be finite to be ranked")
    w = np.ones(len(parts)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(parts),) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be {len(parts)} non-negative numbers with a positive sum")
    w = w / w.sum()
    return sum(wk * rank_quantile(p) for wk, p in zip(w, parts, strict=True))
