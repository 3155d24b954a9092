"""Seeded label-noise families with exact rates, for benchmarks and tests with known answers.

Every family is described by its noise transition T[k, j] = P(given = j | true = k) and drawn
*exactly*: in every true class k, exactly ``round(rate_k * n_k)`` samples (chosen uniformly
without replacement) get a wrong label, where ``rate_k`` is the family's noise rate of class k.
The families (the three kinds of noise of Patrini et al. 2017, "Making Deep Neural Networks
Robust to Label Noise: a Loss Correction Approach", and Xia et al. 2019, "Are Anchor Points
Really Indispensable in Label-Noise Learning?"):

- ``symmetric``: every class has noise rate ``rate``; a wrong label is uniform over the other
  C - 1 classes.
- ``pairs`` (look-alike pairs): the classes are matched into disjoint pairs of most similar
  classes (greedy on the cosine similarity of the class centroids of the features); each class
  loses ``rate`` of its samples to its partner (a <-> b). Identifiable while rate < 0.5 (each
  given class keeps a plurality of its true members): at 0.5 the two classes are exchangeable.
- ``class_dependent``: a subset R of "receiving" classes (default: every other class of a random
  permutation, half of them) takes labels from the others. Every donor class loses ``rate`` of its
  samples, each relabelled to a uniformly random receiving class; receiving classes keep theirs.
  Identifiable while ``rate < |R| / (|R| + 1)`` (the donor label stays the plurality of the donor's
  true members). The share of all labels that are wrong is about ``rate`` times the donors' share
  (rate 0.4 with half the classes donating: 20 % of all labels, 25-30 % of each receiving class's
  labels wrong, the case of issue 14).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FAMILIES = ("symmetric", "pairs", "class_dependent")


@dataclass(frozen=True)
class NoisyLabels:
    """One draw: ``given_labels`` (N,) int64; ``is_wrong`` (N,) bool (given != true);
    ``transition`` (C, C) the family's T[true, given] (rows sum to 1); ``receivers`` the
    receiving classes of ``class_dependent`` (empty otherwise); ``pairs`` the matched class
    pairs of ``pairs`` (empty otherwise)."""

    given_labels: np.ndarray
    is_wrong: np.ndarray
    transition: np.ndarray
    receivers: tuple[int, ...] = ()
    pairs: tuple[tuple[int, int], ...] = ()


def look_alike_pairs(features: np.ndarray, true_labels: np.ndarray, *, n_classes: int
                     ) -> tuple[tuple[int, int], ...]:
    """Disjoint pairs of the most similar classes: greedy maximum matching on the cosine
    similarity of the class centroids (the most similar unmatched pair first). With an odd C the
    least matched class stays alone (noise-free)."""
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(true_labels)
    centroids = np.stack([x[y == k].mean(axis=0) for k in range(n_classes)])
    centroids -= x.mean(axis=0)  # similarity of directions from the global mean, not of raw means
    unit = centroids / np.clip(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12, None)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    free = set(range(n_classes))
    pairs = []
    for flat in np.argsort(-similarity, axis=None, kind="stable"):
        a, b = divmod(int(flat), n_classes)
        if a < b and a in free and b in free:
            pairs.append((a, b))
            free -= {a, b}
    return tuple(pairs)


def transition_matrix(family: str, rate: float, *, n_classes: int,
                      pairs: tuple[tuple[int, int], ...] = (), receivers: tuple[int, ...] = ()
                      ) -> np.ndarray:
    """The family's T[true, given] (C, C), rows summing to 1 (see the module docstring)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown noise family {family!r}; choose one of {', '.join(FAMILIES)}")
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"noise rate must lie in [0, 1), got {rate}")
    c = n_classes
    t = np.eye(c)
    if family == "symmetric":
        t = np.full((c, c), rate / (c - 1))
        np.fill_diagonal(t, 1.0 - rate)
    elif family == "pairs":
        for a, b in pairs:
            t[a, a] = t[b, b] = 1.0 - rate
            t[a, b] = t[b, a] = rate
    else:
        donors = [k for k in range(c) if k not in set(receivers)]
        for k in donors:
            t[k, k] = 1.0 - rate
            t[k, list(receivers)] = rate / len(receivers)
    return t


def inject_family_noise(
    true_labels: np.ndarray,
    family: str,
    rate: float,
    *,
    n_classes: int,
    seed: int,
    features: np.ndarray | None = None,
    receivers: tuple[int, ...] | None = None,
) -> NoisyLabels:
    """Draw noisy labels of one family at one rate, exactly (see the module docstring).

    Parameters
    ----------
    true_labels
        (N,) ints in [0, C).
    family, rate
        One of ``FAMILIES``; the noise rate of each affected true class, in [0, 1).
    seed
        Seeds the choice of flipped samples, their wrong labels and the default receivers.
    features
        (N, D), needed by ``pairs`` (the look-alike matching).
    receivers
        ``class_dependent`` only: the receiving classes (default: half of the classes, drawn).
    """
    y = np.asarray(true_labels).astype(np.int64)
    rng = np.random.default_rng(seed)
    pairs: tuple[tuple[int, int], ...] = ()
    recv: tuple[int, ...] = ()
    if family == "pairs":
        if features is None:
            raise ValueError("family 'pairs' needs the features (the look-alike pairs come from them)")
        pairs = look_alike_pairs(features, y, n_classes=n_classes)
    elif family == "class_dependent":
        drawn = rng.permutation(n_classes)[: n_classes // 2]
        recv = tuple(sorted(int(k) for k in (drawn if receivers is None else receivers)))
        if not recv or len(recv) == n_classes:
            raise ValueError(f"class_dependent noise needs 1 to C - 1 receiving classes, got {recv}")
    t = transition_matrix(family, rate, n_classes=n_classes, pairs=pairs, receivers=recv)
    given = y.copy()
    for k in range(n_classes):
        members = np.flatnonzero(y == k)
        n_wrong = int(round(round(1.0 - t[k, k], 12) * members.size))  # 1 - 0.95 is 0.0500...04
        if n_wrong == 0:
            continue
        flipped = rng.choice(members, n_wrong, replace=False)
        targets = t[k].copy()
        targets[k] = 0.0
        given[flipped] = rng.choice(n_classes, n_wrong, p=targets / targets.sum())
    return NoisyLabels(given, given != y, t, recv, pairs)
