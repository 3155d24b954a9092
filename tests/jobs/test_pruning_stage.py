"""The score job's pruning stage: row blocks, shared neighbours, thin-input skips (large-N paths
forced on tiny seeded data and compared with the registry's own scorers)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from backend.jobs import pruning_stage
from backend.jobs.dataset import Dataset
from backend.jobs.score_inputs import ProbeOutputs
from backend.scoring.knn import knn_search
from backend.scoring.pruning import registry

ROW_WISE = [name for name, spec in registry.SCORES.items() if spec.row_wise]
KNN_SHARING = [name for name, spec in registry.SCORES.items() if spec.from_neighbors is not None]


@pytest.fixture()
def tiny() -> tuple[Dataset, ProbeOutputs]:
    rng = np.random.default_rng(0)
    n, d, c, e = 300, 16, 4, 6
    raw = rng.standard_normal((n, d)).astype(np.float32)
    norms = np.linalg.norm(raw, axis=1)
    labels = rng.integers(0, c, n)
    ids = np.array([f"s{i}" for i in range(n)], dtype=object)
    data = Dataset(ids, labels, [str(k) for k in range(c)], raw / norms[:, None], norms.astype(np.float32), "k")
    logits = rng.standard_normal((2, e, n, c)).astype(np.float32)
    features = rng.standard_normal((2, e, n, 8)).astype(np.float32)
    probs = rng.dirichlet(np.ones(c), size=(2, n)).astype(np.float32)
    return data, ProbeOutputs(probs, logits, features, None, None, "probe")


def test_dynamics_in_row_blocks_equal_one_call(tiny, monkeypatch: pytest.MonkeyPatch) -> None:
    data, probes = tiny
    names = list(ROW_WISE)
    whole = pruning_stage.pruning_scores(data, probes, names)
    per_row = 8 * 2 * probes.logits.shape[1] * probes.logits.shape[3]
    monkeypatch.setattr(pruning_stage, "DYNAMICS_BLOCK_BYTES", 37 * per_row)  # 37-row blocks
    blocked = pruning_stage.pruning_scores(data, probes, names)
    for name in names:
        np.testing.assert_array_equal(blocked[name], whole[name], err_msg=name)
        inputs = registry.ScoreInputs(labels=data.labels, logits=probes.logits, features=probes.features)
        np.testing.assert_array_equal(whole[name], registry.compute_score(name, inputs), err_msg=name)


def test_row_blocks_are_cut_once_per_call(tiny, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both cartography columns come from one pass per block (the blocks are shared)."""
    from backend.scoring.pruning import dynamics_scores as dyn

    data, probes = tiny
    per_row = 8 * 2 * probes.logits.shape[1] * probes.logits.shape[3]
    monkeypatch.setattr(pruning_stage, "DYNAMICS_BLOCK_BYTES", 100 * per_row)  # 3 blocks of 300 rows
    passes = []
    original = dyn.cartography
    monkeypatch.setattr(dyn, "cartography", lambda *a: passes.append(1) or original(*a))
    pruning_stage.pruning_scores(data, probes, ["cartography_confidence", "cartography_variability"])
    assert len(passes) == 3


def test_ensemble_alone_in_row_blocks_equals_the_registry(tiny, monkeypatch: pytest.MonkeyPatch) -> None:
    data, probes = tiny
    inputs = registry.ScoreInputs(labels=data.labels, logits=probes.logits)
    expected = registry.compute_score("ensemble", inputs)
    per_row = 8 * 2 * probes.logits.shape[1] * probes.logits.shape[3]
    monkeypatch.setattr(pruning_stage, "DYNAMICS_BLOCK_BYTES", 37 * per_row)
    alone = pruning_stage.pruning_scores(data, probes, ["ensemble"])  # parts computed in blocks
    with_parts = pruning_stage.pruning_scores(data, probes, ["aum", "el2n", "ensemble"])  # parts reused
    assert list(alone) == ["ensemble"]
    np.testing.assert_allclose(alone["ensemble"], expected)
    np.testing.assert_allclose(with_parts["ensemble"], expected)
    assert "ensemble" in pruning_stage.reads_logits(["knn_density", "ensemble"])


def test_knn_scores_from_shared_neighbours_match_the_scorers(tiny) -> None:
    data, probes = tiny
    neighbors = knn_search(data.unit, pruning_stage.SHARED_K, method="exact")
    shared = pruning_stage.pruning_scores(data, probes, list(KNN_SHARING), neighbors=neighbors)
    own = pruning_stage.pruning_scores(data, probes, list(KNN_SHARING))
    for name in KNN_SHARING:
        np.testing.assert_allclose(shared[name], own[name], rtol=0, atol=1e-6, err_msg=name)


def test_shared_neighbours_only_above_the_threshold(tiny, monkeypatch: pytest.MonkeyPatch) -> None:
    data, _ = tiny
    assert pruning_stage.shared_neighbors(data, ["knn_density"]) is None
    monkeypatch.setattr(pruning_stage, "SHARED_KNN_ABOVE", 100)
    idx, sims = pruning_stage.shared_neighbors(data, ["knn_density"])
    assert idx.shape == sims.shape == (len(data.ids), pruning_stage.SHARED_K)


def test_model_certainty_with_one_seed_is_skipped(tiny, caplog: pytest.LogCaptureFixture) -> None:
    data, probes = tiny
    one_seed = ProbeOutputs(probes.probs_by_seed[:1], probes.logits[:1], None, None, None, "probe")
    with caplog.at_level(logging.WARNING):
        out = pruning_stage.pruning_scores(data, one_seed, ["model_certainty", "sim", "grand"])
    assert set(out) == {"sim"}
    assert "model_certainty skipped" in caplog.text and "grand skipped" in caplog.text


def test_the_stage_reads_what_each_spec_says() -> None:
    """The metadata the stage runs by (one place per fact: the registry's specs)."""
    assert ROW_WISE == ["el2n", "grand", "forgetting", "aum", "dynamic_uncertainty", "tdds",
                        "cartography_confidence", "cartography_variability"]
    assert KNN_SHARING == ["knn_density", "knn_uniqueness"]
    assert set(pruning_stage.reads_logits(list(registry.DEFAULT_SCORERS))) == {*ROW_WISE, "ensemble"}
    assert registry.get_score("ensemble").parts == ("aum", "el2n")
    assert {n: s.min_seeds for n, s in registry.SCORES.items() if s.min_seeds > 1} == {"model_certainty": 2}
