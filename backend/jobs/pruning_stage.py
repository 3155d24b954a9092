"""The pruning-score part of the score job: every requested scorer on the stored embeddings and
the probes' training dynamics, with the large-N accommodations the scorers themselves lack.

What this adds around :func:`backend.scoring.pruning.registry.compute_score`, read from each
score's :class:`~backend.scoring.pruning.registry.ScoreSpec` (``row_wise``, ``reads_logits``,
``min_seeds``, ``from_neighbors``, ``parts``), never from lists of names kept here. Sizes are for
1M rows x 8 epochs x 100 classes; the measured times and memory are in ``bench/results/scale.json``
(``bench/scale.py``) and ``bench/results/NOTES.md``.

- **Row chunks for row-wise scores** (``spec.row_wise``: the training-dynamics scorers, each
  sample's value reads only its own logits). They convert the whole (S, E, N, C) logits to
  float64 and make several same-sized temporaries (``dynamic_uncertainty`` / ``cartography``
  softmax all epochs: ~4 copies), i.e. ~25 GB, beyond a 24 GB machine. They are run here on
  row blocks of at most ``DYNAMICS_BLOCK_BYTES`` of float64 logits and concatenated. Values are
  bit-identical to one call (every reduction is per row); up to one block (the default up to
  ~40k rows at 8 epochs x 100 classes, and every test) it *is* one call.
- **One neighbour search for the kNN scores above ``SHARED_KNN_ABOVE`` rows**
  (``spec.from_neighbors``: ``knn_density`` and ``knn_uniqueness``). Each would build its own IVF
  index (k-means + full scan) through ``knn_search``; above the threshold the job runs one
  search with k = 10 and derives them from it with the scorers' own formulas, and the
  label-noise stage reuses the same neighbours (searched on the stored unit vectors rather than
  on re-normalised features: equal up to float rounding). Below the threshold the registry's
  scorers run unchanged.
- **Shared steps run once.** The scorers read one ``ScoreInputs`` per call, whose memo
  (``ScoreInputs.memo``) gives prototypes and SemDeDup one k-means fit (the same K and seed),
  sim the separability already computed and the two cartography columns one pass per row
  block. Values are bit-identical to separate calls.
- **Rank ensembles from their parts** (``spec.parts``: ``ensemble``, AUM + EL2N ranks) reuse the
  parts already computed in this job, or compute them in row blocks; only the final ranking is
  global.
- **Scorers whose inputs are too thin are skipped with a warning** instead of failing the job:
  missing inputs (no penultimate features above ``LARGE_N`` rows or from imported logits), or
  fewer probe seeds than ``spec.min_seeds`` (``model_certainty`` needs 2; the large-N probe
  recipe trains one, and ``sim`` is then computed without it).
"""

from __future__ import annotations

import logging
import math

import numpy as np

from backend.jobs.dataset import Dataset
from backend.jobs.score_inputs import LARGE_N, ProbeOutputs
from backend.jobs.tracking import stage
from backend.scoring.knn import knn_search
from backend.scoring.pruning import registry

log = logging.getLogger(__name__)

#: float64 bytes of logits per row block of the dynamics scorers (their temporaries are ~4x).
DYNAMICS_BLOCK_BYTES = 256 * 2**20
#: Above this many rows one k = 10 neighbour search serves knn_density, knn_uniqueness and the
#: label-noise kNN vote (an IVF search there, ``backend.scoring.knn.DEFAULT_ANN_THRESHOLD``).
SHARED_KNN_ABOVE = LARGE_N
SHARED_K = 10


def reads_logits(names: list[str]) -> list[str]:
    """Those of ``names`` that read the per-epoch logits (the score job runs them first, then
    releases the logits)."""
    return [name for name in names if registry.get_score(name).reads_logits]


def shared_neighbors(data: Dataset, names: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """One (indices (N, 10), similarities (N, 10)) search over the unit embeddings for the
    label-noise stage and the kNN scorers, above ``SHARED_KNN_ABOVE`` rows; else None (each
    consumer searches itself)."""
    if len(data.ids) <= SHARED_KNN_ABOVE:
        return None
    sharing = [n for n in names if registry.get_score(n).from_neighbors is not None]
    log.info("one shared %d-NN search for the label-noise vote and %s", SHARED_K,
             ", ".join(sharing) or "no kNN scorer")
    return knn_search(data.unit, SHARED_K, method="auto", seed=0)


def pruning_scores(data: Dataset, probes: ProbeOutputs, names: list[str], *,
                   neighbors: tuple[np.ndarray, np.ndarray] | None = None,
                   show_progress: bool = False) -> dict[str, np.ndarray]:
    """(N,) raw values per scorer name (direction as registered); see the module docstring."""
    inputs = registry.ScoreInputs(labels=data.labels, embeddings=data.unit, norms=data.norms,
                                  logits=probes.logits, features=probes.features,
                                  probs_by_model=probes.probs_by_seed)
    out = {}
    for name in names:
        spec = registry.get_score(name)
        missing = inputs.missing(*spec.needs)
        if missing:
            why = ("imported logits carry no penultimate features" if probes.source != "probe"
                   else f"the probes record no penultimate features above {LARGE_N} rows")
            if "features" not in missing:
                why = "the score job released them before this stage"
            log.warning("score %s skipped: needs %s (%s)", name, ", ".join(missing), why)
            continue
        n_seeds = 0 if inputs.probs_by_model is None else inputs.probs_by_model.shape[0]
        if spec.min_seeds > 1 and n_seeds < spec.min_seeds:
            log.warning("score %s skipped: needs >= %d probe seeds, the probes trained %d "
                        "(the recipe above %d rows trains one)", name, spec.min_seeds, n_seeds, LARGE_N)
            continue
        with stage(log, f"score {name}", show=show_progress):
            if neighbors is not None and spec.from_neighbors is not None:
                out[name] = spec.from_neighbors(neighbors[1])
            elif spec.parts:  # from its parts, computed here in row blocks when missing
                parts = {p: out[p] if p in out else _in_blocks(p, inputs) for p in spec.parts}
                out[name] = registry.from_stored(name, parts)
            elif spec.row_wise:
                out[name] = _in_blocks(name, inputs)
            else:
                out[name] = registry.compute_score(name, inputs)
    return out


def _in_blocks(name: str, inputs: registry.ScoreInputs) -> np.ndarray:
    """A row-wise score on row blocks of the logits, concatenated."""
    return np.concatenate([registry.compute_score(name, part) for part in _row_blocks(inputs)])


def _row_blocks(inputs: registry.ScoreInputs) -> list[registry.ScoreInputs]:
    """``inputs`` cut into row blocks of the logits (itself when one block holds them all); the
    same block objects for every scorer, so steps two scorers share (cartography) run once."""
    logits = inputs.logits
    n = logits.shape[-2]
    per_row = 8 * math.prod(logits.shape[:-2]) * logits.shape[-1]
    block = max(1, DYNAMICS_BLOCK_BYTES // per_row)
    if block >= n:
        return [inputs]

    def cut() -> list[registry.ScoreInputs]:
        feats = inputs.features
        return [registry.ScoreInputs(
            labels=inputs.labels[rows], logits=logits[..., rows, :],
            features=None if feats is None else feats[..., rows, :],
        ) for rows in (slice(start, start + block) for start in range(0, n, block))]  # fmt: skip

    return inputs.memo(("row blocks", block), cut)

