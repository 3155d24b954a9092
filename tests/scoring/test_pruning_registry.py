"""Pruning registry: names, score orientation, method parsing and prune() end to end on digits."""

from __future__ import annotations

import numpy as np
import pytest

from backend.scoring.pruning import registry
from backend.scoring.pruning.budgets import n_to_keep
from backend.scoring.pruning.geometry_scores import semdedup
from backend.scoring.pruning.procedures import topk_prune
from backend.scoring.pruning.registry import (
    DEFAULT_SCORERS,
    METHODS,
    SCORES,
    ScoreInputs,
    compute_score,
    difficulty_of,
    parse_method,
    prune,
    recommended_default,
)
from backend.scoring.pruning.sims_sampling import DEFAULT_SIMS_SAMPLING

N = 300
PAPER_METHODS = ("random", "keep_hard", "keep_easy", "moderate", "ccs", "sims")


@pytest.fixture(scope="module")
def inputs() -> ScoreInputs:
    """300 digits with 12 planted near-duplicates at the end, synthetic training dynamics
    (the model learns every sample over 6 epochs, some late) and 3 probes."""
    from sklearn.datasets import load_digits

    data = load_digits()
    rng = np.random.default_rng(0)
    base = data.data[: N - 12].astype(np.float32)
    copies = base[:12] + 0.01 * rng.normal(size=(12, 64)).astype(np.float32)
    x = np.vstack([base, copies])
    y = np.concatenate([data.target[: N - 12], data.target[:12]])
    n_epochs, n_classes = 6, 10
    speed = rng.uniform(0.2, 2.0, size=N)
    logits = rng.normal(size=(n_epochs, N, n_classes))
    logits[:, np.arange(N), y] += np.arange(n_epochs)[:, None] * speed
    features = rng.normal(size=(n_epochs, N, 8))
    probe_logits = rng.normal(size=(3, N, n_classes))
    probe_logits[:, np.arange(N), y] += 2.0
    probs = np.exp(probe_logits) / np.exp(probe_logits).sum(axis=-1, keepdims=True)
    return ScoreInputs(
        labels=y,
        embeddings=x,
        norms=np.linalg.norm(x, axis=1),
        logits=logits,
        features=features,
        probs_by_model=probs,
    )


@pytest.fixture(scope="module")
def dedup(inputs: ScoreInputs) -> np.ndarray:
    mask = semdedup(inputs.embeddings, threshold=0.999, seed=0).is_duplicate
    assert mask.sum() == 12  # one of each planted pair
    return mask


# -- names ------------------------------------------------------------------------------------


def test_registered_names() -> None:
    assert set(DEFAULT_SCORERS) <= set(SCORES)
    defaults = {name: spec.default_score for name, spec in METHODS.items()}
    assert {name: defaults.get(name, "missing") for name in PAPER_METHODS} == {
        "random": None,
        "keep_hard": "el2n",
        "keep_easy": "el2n",
        "moderate": "moderate",
        "ccs": "aum",
        "sims": "sim",
    }
    for name, spec in SCORES.items():
        assert spec.name == name and spec.description


def test_register_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="score 'el2n' is already registered"):
        registry.register_score(SCORES["el2n"])
    with pytest.raises(ValueError, match="method 'ccs' is already registered"):
        registry.register_method(METHODS["ccs"])


def test_parse_method() -> None:
    spec, score = parse_method("ccs:forgetting")
    assert spec.name == "ccs" and score == "forgetting"
    assert parse_method("ccs")[1] == "aum"
    assert parse_method("random") == (METHODS["random"], None)
    assert parse_method("keep_easy:prototypes")[1] == "prototypes"


def test_parse_method_errors_list_known_names() -> None:
    with pytest.raises(
        ValueError, match="unknown pruning method 'topk'; known: ccs, .*keep_hard, .*random, sims"
    ):
        parse_method("topk")
    with pytest.raises(ValueError, match="unknown pruning score 'loss'; known: aum, .*el2n"):
        parse_method("ccs:loss")


# -- scores -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", DEFAULT_SCORERS)
def test_every_score_computes_finite_values(inputs: ScoreInputs, name: str) -> None:
    values = compute_score(name, inputs)
    assert values.shape == (N,) and values.dtype == np.float64
    assert np.isfinite(values).all()


def test_scores_match_their_functions(inputs: ScoreInputs) -> None:
    from backend.scoring.pruning import dynamics_scores as dyn
    from backend.scoring.pruning import sim_score as sims

    np.testing.assert_array_equal(
        compute_score("el2n", inputs, epoch=2),
        dyn.el2n_score(inputs.logits, inputs.labels, epoch=2),
    )
    np.testing.assert_array_equal(compute_score("integrity", inputs), inputs.norms)
    expected = sims.sims_score(
        separability=sims.separability(inputs.embeddings, inputs.labels),
        integrity=inputs.norms,
        certainty=sims.model_certainty(inputs.probs_by_model),
        labels=inputs.labels,
    )
    np.testing.assert_array_equal(compute_score("sim", inputs), expected)
    semdedup_score = compute_score("semdedup", inputs, threshold=0.999)
    assert semdedup_score.sum() == 12 and set(np.unique(semdedup_score)) == {0.0, 1.0}


def test_shared_steps_run_once_per_inputs(inputs: ScoreInputs, monkeypatch: pytest.MonkeyPatch) -> None:
    """Prototypes and SemDeDup share one k-means fit per (K, seed), sim reuses separability, the
    two cartography columns one pass; the values equal the unshared functions'."""
    from backend.scoring.pruning import dynamics_scores as dyn
    from backend.scoring.pruning import geometry_scores as geo
    from backend.scoring.pruning import sim_score as sims

    fresh = ScoreInputs(labels=inputs.labels, embeddings=inputs.embeddings, norms=inputs.norms,
                        logits=inputs.logits, probs_by_model=inputs.probs_by_model)
    calls: dict[str, int] = {}

    def counted(module, name):  # noqa: ANN001, ANN202
        original = getattr(module, name)

        def run(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            calls[name] = calls.get(name, 0) + 1
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, run)

    for module, name in ((geo, "kmeans"), (sims, "separability"), (dyn, "cartography")):
        counted(module, name)
    values = {n: compute_score(n, fresh) for n in
              ("prototypes", "semdedup", "separability", "sim", "cartography_confidence",
               "cartography_variability")}  # fmt: skip
    assert calls == {"kmeans": 1, "separability": 1, "cartography": 1}
    compute_score("prototypes", fresh, n_clusters=7)  # another K: its own fit
    assert calls["kmeans"] == 2
    monkeypatch.undo()
    np.testing.assert_array_equal(values["prototypes"], geo.prototype_distance(inputs.embeddings))
    np.testing.assert_array_equal(values["semdedup"], geo.semdedup(inputs.embeddings).is_duplicate)
    np.testing.assert_array_equal(values["separability"], sims.separability(inputs.embeddings, inputs.labels))
    np.testing.assert_array_equal(values["cartography_variability"],
                                  dyn.cartography(inputs.logits, inputs.labels).variability)


def test_compute_score_names_missing_inputs() -> None:
    bare = ScoreInputs(labels=np.zeros(4, dtype=int))
    with pytest.raises(ValueError, match="needs logits, features, which were not provided"):
        compute_score("grand", bare)
    with pytest.raises(ValueError, match="unknown pruning score 'nope'"):
        compute_score("nope", bare)


def test_difficulty_orientation() -> None:
    v = np.array([-1.0, 2.0])
    for name in ("aum", "cartography_confidence", "knn_density", "separability", "sim"):
        np.testing.assert_array_equal(difficulty_of(name, v), -v)
    for name in ("el2n", "grand", "forgetting", "dynamic_uncertainty", "prototypes", "moderate"):
        np.testing.assert_array_equal(difficulty_of(name, v), v)


# -- prune() end to end -----------------------------------------------------------------------


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("ratio", [0.3, 0.9])
def test_prune_every_method_excludes_dedup(
    inputs: ScoreInputs, dedup: np.ndarray, method: str, ratio: float
) -> None:
    kept = prune(method, ratio, labels=inputs.labels, inputs=inputs, exclude=dedup, seed=1)
    assert kept.dtype == np.int64
    assert kept.size == n_to_keep(N, ratio)
    assert np.array_equal(kept, np.unique(kept))
    assert not dedup[kept].any()
    again = prune(method, ratio, labels=inputs.labels, inputs=inputs, exclude=dedup, seed=1)
    np.testing.assert_array_equal(kept, again)


@pytest.mark.parametrize("score", ["el2n", "aum", "forgetting", "prototypes", "sim"])
@pytest.mark.parametrize("method", ["keep_hard", "ccs", "sims"])
def test_prune_method_score_pairs(inputs: ScoreInputs, method: str, score: str) -> None:
    kept = prune(f"{method}:{score}", 0.8, labels=inputs.labels, inputs=inputs)
    assert kept.size == n_to_keep(N, 0.8)


def test_prune_keep_hard_uses_the_oriented_score(inputs: ScoreInputs) -> None:
    aum = compute_score("aum", inputs)
    kept = prune("keep_hard:aum", 0.5, labels=inputs.labels, scores={"aum": aum})
    np.testing.assert_array_equal(kept, topk_prune(-aum, 0.5, labels=inputs.labels))
    # lowest margins (hardest) kept within each class
    for c in range(10):
        members = inputs.labels == c
        kept_c = np.intersect1d(kept, np.flatnonzero(members))
        dropped_c = np.setdiff1d(np.flatnonzero(members), kept_c)
        assert aum[kept_c].max() <= aum[dropped_c].min()
    easy = prune("keep_easy:aum", 0.5, labels=inputs.labels, scores={"aum": aum}, per_class="none")
    np.testing.assert_array_equal(easy, np.sort(np.argsort(-aum, kind="stable")[:150]))


def test_prune_stored_scores_equal_computed(inputs: ScoreInputs) -> None:
    stored = {"el2n": compute_score("el2n", inputs)}
    from_store = prune("ccs:el2n", 0.7, labels=inputs.labels, scores=stored, seed=3)
    computed = prune("ccs:el2n", 0.7, labels=inputs.labels, inputs=inputs, seed=3)
    np.testing.assert_array_equal(from_store, computed)


def test_prune_passes_options(inputs: ScoreInputs) -> None:
    el2n = compute_score("el2n", inputs)
    # ccs with beta: the 20% hardest (highest EL2N) never kept
    kept = prune(
        "ccs:el2n", 0.5, labels=inputs.labels, scores={"el2n": el2n}, per_class="none",
        options={"ccs": {"beta": 0.2}},
    )  # fmt: skip
    assert not np.isin(np.argsort(-el2n, kind="stable")[:60], kept).any()
    # score options reach the scorer
    epoch0 = prune(
        "keep_hard:el2n", 0.5, labels=inputs.labels, inputs=inputs, options={"el2n": {"epoch": 0}}
    )
    expected = topk_prune(compute_score("el2n", inputs, epoch=0), 0.5, labels=inputs.labels)
    np.testing.assert_array_equal(epoch0, expected)
    # sims params as a plain dict
    from backend.scoring.pruning.sims_sampling import SimsSampling, sims_sample

    as_dict = prune(
        "sims", 0.9, labels=inputs.labels, inputs=inputs,
        options={"sims": {"params": {"knee": 1.0}}},
    )  # fmt: skip
    difficulty = difficulty_of("sim", compute_score("sim", inputs))
    expected = sims_sample(
        difficulty, 0.9, embeddings=inputs.embeddings, labels=inputs.labels,
        params=SimsSampling(knee=1.0),
    )  # fmt: skip
    np.testing.assert_array_equal(as_dict, expected)


def test_prune_errors(inputs: ScoreInputs) -> None:
    with pytest.raises(ValueError, match="needs the 'el2n' score, which these scores lack"):
        prune("keep_hard", 0.5, labels=inputs.labels)
    embeddings_only = ScoreInputs(labels=inputs.labels, embeddings=inputs.embeddings)
    with pytest.raises(ValueError, match=r"needs the 'ensemble' score \(or its parts aum, el2n\)"):
        prune("sims:ensemble", 0.5, labels=inputs.labels, inputs=embeddings_only, scores={"aum": np.zeros(300)})
    with pytest.raises(ValueError, match="REMOVE"):
        prune("random", 1.0, labels=inputs.labels)
    with pytest.raises(ValueError, match="unknown pruning method"):
        prune("nothing", 0.5, labels=inputs.labels)


def test_recommended_default() -> None:
    recipe = recommended_default(0.5)
    assert recipe.name == "sims:ensemble"
    assert recipe.options == {"sims": {"params": DEFAULT_SIMS_SAMPLING.to_dict()}}
    with pytest.raises(ValueError, match="REMOVE"):
        recommended_default(-0.1)


def test_recommended_default_runs(inputs: ScoreInputs, dedup: np.ndarray) -> None:
    recipe = recommended_default(0.7)
    kept = prune(
        recipe.name, 0.7, labels=inputs.labels, inputs=inputs, exclude=dedup, options=recipe.options
    )
    assert kept.size == n_to_keep(N, 0.7) and not dedup[kept].any()
