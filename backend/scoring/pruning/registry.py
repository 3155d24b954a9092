"""Names for every pruning score and procedure, and the recommended default.

The CLI looks names up here: ``thresher score --scorers el2n,sim`` computes scores by name
(stored as ``<name>_score`` columns), ``thresher prune --method NAME --ratio R --per-class P
--seed S`` runs a procedure by name. A method name may carry the score it runs on after a colon:
``ccs:aum``, ``keep_hard:el2n``, ``sims:forgetting``; without one it uses the method's default
score. With no method at all the CLI uses :func:`recommended_default`.

Options travel as nested dicts of keyword arguments keyed by name, e.g.
``{"ccs": {"beta": 0.1}, "prototypes": {"n_clusters": 10}}``;
:func:`backend.scoring.pruning.options.method_options` builds the procedure's part from
``thresher prune --option KEY=VALUE``.

What the score job needs to know about a score to run it at scale (row-wise, reads the logits,
how many probe seeds, rebuilt from the shared kNN graph, a rank ensemble of which parts) is on
its :class:`ScoreSpec`; ``backend.jobs.pruning_stage`` reads it from there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backend.scoring.pruning import dynamics_scores as dyn
from backend.scoring.pruning import ensemble as ens
from backend.scoring.pruning import geometry_scores as geo
from backend.scoring.pruning import sim_score
from backend.scoring.pruning._common import check_embeddings
from backend.scoring.pruning.budgets import check_ratio


@dataclass
class ScoreInputs:
    """What scorers read; any field may be None when not available.

    ``labels`` (N,) int; ``embeddings`` (N, D) as stored (L2-normalised or not); ``norms`` (N,)
    norms of the unnormalised embeddings; ``logits`` (E, N, C) or (S, E, N, C) per-epoch
    logits (probes or imported); ``features`` penultimate features matching ``logits``'
    leading axes; ``probs_by_model`` (K, N, C) predictions of K probes (out-of-fold).
    """

    labels: np.ndarray
    embeddings: np.ndarray | None = None
    norms: np.ndarray | None = None
    logits: np.ndarray | None = None
    features: np.ndarray | None = None
    probs_by_model: np.ndarray | None = None
    _memo: dict[tuple, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def memo(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per ``key`` for these inputs, then the stored result. Scorers that
        share a step run it once when scored from the same inputs (one k-means for prototypes
        and SemDeDup, one separability for itself and sim, one cartography pass for its two
        columns; the time this saves at 1M rows is in ``bench/results/scale.json``'s notes).
        The arrays must not change after the first call."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def missing(self, *names: str) -> list[str]:
        """Those of ``names`` that were not provided (None)."""
        return [n for n in names if getattr(self, n) is None]

    def need(self, *names: str) -> None:
        missing = self.missing(*names)
        if missing:
            raise ValueError(f"this score needs {', '.join(missing)}, which were not provided")


@dataclass(frozen=True)
class ScoreSpec:
    """A registered score: ``compute(inputs, **options)`` -> (N,) raw values.

    ``needs``: the :class:`ScoreInputs` fields it reads (``logits``, ``features`` and
    ``probs_by_model`` come from the probes or imported logits). What the score job reads to
    run it at scale (``backend.jobs.pruning_stage``):

    - ``row_wise``: a sample's value reads only that sample's rows of the logits / features, so
      the score may be computed on row blocks and concatenated (bit-identical); else global.
    - ``min_seeds``: probe seeds ``probs_by_model`` must hold (``model_certainty``: 2, the
      disagreement between seeds); with fewer the job skips the score with a warning.
    - ``from_neighbors``: the score rebuilt from precomputed neighbour similarities (N, k),
      most similar first, by its own formula; set for the scores that can share the job's one
      kNN graph instead of searching themselves.
    - ``parts``: a rank ensemble's parts (``ensemble.ENSEMBLES``); only its final ranking is
      global, so it is rebuilt from parts computed row-wise.
    """

    name: str
    compute: Callable[..., np.ndarray]
    higher_is_harder: bool
    needs: tuple[str, ...]
    paper: str
    description: str
    row_wise: bool = False
    min_seeds: int = 1
    from_neighbors: Callable[[np.ndarray], np.ndarray] | None = None
    parts: tuple[str, ...] = ()

    @property
    def reads_logits(self) -> bool:
        """Reads the per-epoch logits (the score job runs these before it releases them)."""
        return "logits" in self.needs


@dataclass(frozen=True)
class MethodSpec:
    """A registered procedure: ``run(difficulty, ratio, *, embeddings, labels, per_class, seed,
    exclude, **options)`` -> sorted int64 kept indices. ``default_score`` None = no score."""

    name: str
    run: Callable[..., np.ndarray]
    default_score: str | None
    paper: str
    description: str


@dataclass(frozen=True)
class PruneRecipe:
    """A method, the score it runs on, and its options: what :func:`recommended_default` returns."""

    method: str
    score: str | None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.method if self.score is None else f"{self.method}:{self.score}"


SCORES: dict[str, ScoreSpec] = {}
METHODS: dict[str, MethodSpec] = {}


def register_score(spec: ScoreSpec) -> ScoreSpec:
    if spec.name in SCORES:
        raise ValueError(f"score {spec.name!r} is already registered")
    SCORES[spec.name] = spec
    return spec


def register_method(spec: MethodSpec) -> MethodSpec:
    if spec.name in METHODS:
        raise ValueError(f"method {spec.name!r} is already registered")
    METHODS[spec.name] = spec
    return spec


def get_score(name: str) -> ScoreSpec:
    if name not in SCORES:
        raise ValueError(f"unknown pruning score {name!r}; known: {', '.join(sorted(SCORES))}")
    return SCORES[name]


def compute_score(name: str, inputs: ScoreInputs, **options: Any) -> np.ndarray:
    """Raw (N,) values of score ``name`` (direction as registered)."""
    spec = get_score(name)
    inputs.need(*spec.needs)
    return np.asarray(spec.compute(inputs, **options), dtype=np.float64)


def from_stored(name: str, scores: dict[str, np.ndarray]) -> np.ndarray | None:
    """An ensemble score rebuilt from its stored parts (raw values as stored), or None when
    ``name`` is no ensemble or a part is missing. Lets score runs made before an ensemble existed
    (or with ``--scorers aum,el2n``) serve it."""
    parts = ens.ENSEMBLES.get(name)
    if parts is None or any(p not in scores for p in parts):
        return None
    return ens.rank_ensemble([difficulty_of(p, scores[p]) for p in parts])


def _parts_hint(name: str) -> str:
    parts = ens.ENSEMBLES.get(name)
    return "" if parts is None else f" (or its parts {', '.join(parts)})"


def difficulty_of(name: str, values: np.ndarray) -> np.ndarray:
    """Orient a score so that higher = harder / more important to keep."""
    v = np.asarray(values, dtype=np.float64)
    return v if get_score(name).higher_is_harder else -v


def parse_method(name: str) -> tuple[MethodSpec, str | None]:
    """``"ccs:aum"`` -> (the ccs spec, "aum"); ``"random"`` -> (spec, None)."""
    method, _, score = str(name).partition(":")
    if method not in METHODS:
        raise ValueError(f"unknown pruning method {method!r}; known: {', '.join(sorted(METHODS))}")
    spec = METHODS[method]
    score = score or spec.default_score
    if score is not None:
        get_score(score)
    return spec, score


def prune(
    method: str,
    ratio: float,
    *,
    labels: np.ndarray,
    scores: dict[str, np.ndarray] | None = None,
    inputs: ScoreInputs | None = None,
    embeddings: np.ndarray | None = None,
    per_class: str = "proportional",
    seed: int = 0,
    exclude: np.ndarray | None = None,
    options: dict[str, dict[str, Any]] | None = None,
) -> np.ndarray:
    """Run a registered method by name; ``ratio`` is the fraction REMOVED.

    The score is taken from ``scores[score_name]`` (raw values as stored) or computed from
    ``inputs``. ``embeddings`` (default ``inputs.embeddings``) feed the methods that need
    geometry (``sims`` coverage strata). ``exclude`` is an optional (N,) bool mask of samples removed first
    (flagged label issues, near-duplicates: ``exclusions.removed_first``); they count towards the ratio.
    Returns sorted int64 kept indices.
    """
    check_ratio(ratio)
    spec, score_name = parse_method(method)
    options = options or {}
    y = np.asarray(labels)
    difficulty = None
    if score_name is not None:
        raw = _raw_score(method, score_name, scores, inputs, options.get(score_name, {}))
        difficulty = difficulty_of(score_name, raw)
    if embeddings is None and inputs is not None:
        embeddings = inputs.embeddings
    return spec.run(
        difficulty,
        ratio,
        embeddings=embeddings,
        labels=y,
        per_class=per_class,
        seed=seed,
        exclude=exclude,
        **options.get(spec.name, {}),
    )


def _raw_score(method: str, name: str, scores: dict[str, np.ndarray] | None, inputs: ScoreInputs | None,
               options: dict[str, Any]) -> np.ndarray:
    """Score ``name`` as stored, else rebuilt from stored parts, else computed from ``inputs``."""
    if scores is not None and name in scores:
        return np.asarray(scores[name], dtype=np.float64)
    derived = None if scores is None else from_stored(name, scores)
    if derived is not None:
        return derived
    if inputs is not None and not inputs.missing(*get_score(name).needs):
        return compute_score(name, inputs, **options)
    raise ValueError(f"method {method!r} needs the {name!r} score{_parts_hint(name)}, "
                     "which these scores lack; compute it with `thresher score`")


def recommended_default(ratio: float) -> PruneRecipe:
    """The method the CLI uses when none is named (see ``bench/pruning.py`` for the evidence).

    SIMS importance sampling over the AUM + EL2N rank ensemble (``ensemble.py`` says why); the
    sampling distribution adapts to ``ratio`` by itself (keep-hard at low ratios, coverage
    strata and typical samples at high ones).
    """
    check_ratio(ratio)
    from backend.scoring.pruning.sims_sampling import DEFAULT_SIMS_SAMPLING

    return PruneRecipe("sims", "ensemble", {"sims": {"params": DEFAULT_SIMS_SAMPLING.to_dict()}})


def recommended_scorers() -> tuple[str, ...]:
    """Scores ``thresher score`` computes when none are named."""
    return DEFAULT_SCORERS


# -- scores ---------------------------------------------------------------------------------


def _embeddings(inputs: ScoreInputs) -> np.ndarray:
    return check_embeddings(inputs.embeddings)


def _norms(inputs: ScoreInputs) -> np.ndarray:
    if inputs.norms is not None:
        return sim_score.integrity(inputs.norms)
    return np.linalg.norm(_embeddings(inputs).astype(np.float64), axis=1)


def _separability(inputs: ScoreInputs) -> np.ndarray:
    return inputs.memo(("separability",), lambda: sim_score.separability(inputs.embeddings, inputs.labels))


def _cartography(inputs: ScoreInputs) -> dyn.Cartography:
    return inputs.memo(("cartography",), lambda: dyn.cartography(inputs.logits, inputs.labels))


def _clustered(score: Callable[..., Any]) -> Callable[..., Any]:
    """A k-means-based geometry score run on this inputs' shared fit for (K, seed)."""

    def run(inputs: ScoreInputs, *, n_clusters: int | None = None, seed: int = 0, **options: Any) -> Any:
        n = check_embeddings(inputs.embeddings).shape[0]
        k = geo.default_n_clusters(n) if n_clusters is None else int(n_clusters)
        fit = inputs.memo(("clusters", k, seed),
                          lambda: geo.spherical_clusters(inputs.embeddings, k, seed=seed))
        return score(inputs.embeddings, clusters=fit, **options)

    return run


_prototypes = _clustered(geo.prototype_distance)
_semdedup = _clustered(geo.semdedup)


def _sim(
    inputs: ScoreInputs, *, weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
) -> np.ndarray:
    certainty = None
    if inputs.probs_by_model is not None and inputs.probs_by_model.shape[0] >= 2:
        certainty = sim_score.model_certainty(inputs.probs_by_model)
    integrity = None if inputs.norms is None else sim_score.integrity(inputs.norms)
    return sim_score.sims_score(
        separability=_separability(inputs),
        integrity=integrity,
        certainty=certainty,
        labels=inputs.labels,
        weights=weights,
    )


def _ensemble(inputs: ScoreInputs, name: str) -> np.ndarray:
    parts = ens.ENSEMBLES[name]
    return ens.rank_ensemble([difficulty_of(p, compute_score(p, inputs)) for p in parts])


_L, _E = ("logits",), ("embeddings",)
_ROW = {"row_wise": True}  # the training-dynamics scores: one sample's logits each
for _spec in (
    ScoreSpec("el2n", lambda i, **o: dyn.el2n_score(i.logits, i.labels, **o), True, _L,
              "Paul et al. 2021", "early-epoch ||softmax - onehot||, mean over seeds", **_ROW),
    ScoreSpec("grand", lambda i, **o: dyn.grand_score(i.logits, i.features, i.labels, **o), True,
              ("logits", "features"), "Paul et al. 2021", "last-layer gradient norm", **_ROW),
    ScoreSpec("forgetting", lambda i, **o: dyn.forgetting_events(i.logits, i.labels), True, _L,
              "Toneva et al. 2019", "forgetting events; never learned = most", **_ROW),
    ScoreSpec("aum", lambda i, **o: dyn.aum_margin(i.logits, i.labels), False, _L,
              "Pleiss et al. 2020", "area under the margin (low = hard)", **_ROW),
    ScoreSpec("dynamic_uncertainty",
              lambda i, **o: dyn.dynamic_uncertainty(i.logits, i.labels, **o), True, _L,
              "He et al. 2023", "sliding-window std of the true-class probability", **_ROW),
    ScoreSpec("ensemble", lambda i, **o: _ensemble(i, "ensemble"), True, _L,
              "Pleiss et al. 2020 + Paul et al. 2021", "mean rank of AUM and EL2N hardness",
              parts=ens.ENSEMBLES["ensemble"]),
    ScoreSpec("tdds", lambda i, **o: dyn.tdds_score(i.logits, i.labels, **o), True, _L,
              "Zhang et al. 2024", "temporal dual-depth: spread of per-epoch output change", **_ROW),
    ScoreSpec("cartography_confidence",
              lambda i, **o: _cartography(i).confidence, False, _L,
              "Swayamdipta et al. 2020", "mean true-class probability (low = hard)", **_ROW),
    ScoreSpec("cartography_variability",
              lambda i, **o: _cartography(i).variability, True, _L,
              "Swayamdipta et al. 2020", "std of the true-class probability (high = ambiguous)", **_ROW),
    ScoreSpec("prototypes", _prototypes, True, _E,
              "Sorscher et al. 2022", "distance to the nearest k-means centroid"),
    ScoreSpec("moderate", lambda i, **o: geo.moderate_score(i.embeddings, i.labels), True, _E,
              "Xia et al. 2023", "|quantile of distance to class median - 0.5| (low = moderate)"),
    ScoreSpec("knn_density", lambda i, **o: geo.knn_density(i.embeddings, **o), False, _E,
              "", "mean cosine similarity to the k nearest samples (high = redundant)",
              from_neighbors=geo.density_from_sims),
    ScoreSpec("knn_uniqueness", lambda i, **o: geo.knn_uniqueness(i.embeddings, **o), True, _E,
              "fiftyone-brain uniqueness", "weighted distance to the 3 nearest samples",
              from_neighbors=geo.uniqueness_from_sims),
    ScoreSpec("semdedup",
              lambda i, **o: _semdedup(i, **o).is_duplicate.astype(np.float64),
              False, _E, "Abbas et al. 2023", "1 = near-duplicate of a kept sample"),
    ScoreSpec("separability", lambda i, **o: _separability(i), False, _E,
              "Grosz et al. 2024", "nearest-other-class over own-class prototype distance"),
    ScoreSpec("integrity", lambda i, **o: _norms(i), False, _E,
              "Grosz et al. 2024", "norm of the unnormalised embedding"),
    ScoreSpec("model_certainty", lambda i, **o: sim_score.model_certainty(i.probs_by_model), False,
              ("probs_by_model",), "Grosz et al. 2024", "1 - JSD across K probes", min_seeds=2),
    ScoreSpec("sim", _sim, False, _E, "Grosz et al. 2024",
              "SIM: separability x integrity x model certainty (high = easy, clean)"),
):  # fmt: skip
    register_score(_spec)

DEFAULT_SCORERS = (
    "el2n", "grand", "forgetting", "aum", "ensemble", "dynamic_uncertainty", "tdds", "cartography_confidence",
    "cartography_variability", "prototypes", "moderate", "knn_density", "knn_uniqueness",
    "semdedup", "separability", "integrity", "model_certainty", "sim",
)  # fmt: skip


# -- methods --------------------------------------------------------------------------------


def _random(difficulty, ratio, *, embeddings, labels, per_class, seed, exclude):  # noqa: ANN001
    return procedures.random_prune(
        labels.size, ratio, labels=labels, per_class=per_class, seed=seed, exclude=exclude
    )


def _topk(keep: str) -> Callable[..., np.ndarray]:
    def run(difficulty, ratio, *, embeddings, labels, per_class, seed, exclude):  # noqa: ANN001
        return procedures.topk_prune(
            difficulty, ratio, keep=keep, labels=labels, per_class=per_class, seed=seed,
            exclude=exclude,
        )  # fmt: skip

    return run


def _ccs(difficulty, ratio, *, embeddings, labels, per_class, seed, exclude, **options):  # noqa: ANN001
    return procedures.ccs_prune(
        difficulty, ratio, labels=labels, per_class=per_class, seed=seed, exclude=exclude,
        **options,
    )  # fmt: skip


def _d2(difficulty, ratio, *, embeddings, labels, per_class, seed, exclude, **options):  # noqa: ANN001
    from backend.scoring.pruning.d2 import d2_select

    if embeddings is None:
        raise ValueError("method 'd2' needs the embeddings (its kNN graph)")
    d = procedures._check_difficulty(difficulty, labels.size)

    def pick(idx: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
        return d2_select(d, idx, k, embeddings=embeddings, **options)

    return procedures.select(labels.size, ratio, pick, labels=labels, per_class=per_class, seed=seed,
                             exclude=exclude)


def _sims(difficulty, ratio, *, embeddings, labels, per_class, seed, exclude, params=None):  # noqa: ANN001
    from backend.scoring.pruning.sims_sampling import (
        DEFAULT_SIMS_SAMPLING,
        SimsSampling,
        sims_sample,
    )

    if isinstance(params, dict):
        params = SimsSampling(**params)
    return sims_sample(
        difficulty, ratio, embeddings=embeddings, labels=labels, per_class=per_class, seed=seed, exclude=exclude,
        params=params or DEFAULT_SIMS_SAMPLING,
    )  # fmt: skip


from backend.scoring.pruning import procedures  # noqa: E402

for _method in (
    MethodSpec("random", _random, None, "", "uniform random subset"),
    MethodSpec("keep_hard", _topk("hard"), "el2n", "Paul et al. 2021; Toneva et al. 2019",
               "keep the hardest samples by the score"),
    MethodSpec("keep_easy", _topk("easy"), "el2n", "Sorscher et al. 2022",
               "keep the easiest samples by the score"),
    MethodSpec("moderate", _topk("easy"), "moderate", "Xia et al. 2023",
               "keep samples nearest the median distance to their class median"),
    MethodSpec("ccs", _ccs, "aum", "Zheng et al. 2023",
               "coverage-centric: hard cut-off, 50 strata, smallest stratum first"),
    MethodSpec("d2", _d2, "aum", "Maharana et al. 2024",
               "message passing on a kNN graph: hard regions first, near-copies demoted"),
    MethodSpec("sims", _sims, "sim", "Grosz et al. 2024",
               "importance sampling adaptive to the ratio over any score"),
):  # fmt: skip
    register_method(_method)
