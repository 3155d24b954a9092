"""Prune options: ``thresher prune --option KEY=VALUE`` text read as the procedures' own
parameters, typed and range-checked before a run starts."""

from __future__ import annotations

import numpy as np
import pytest

from backend.scoring.pruning.options import method_options, method_parameters
from backend.scoring.pruning.registry import ScoreInputs, prune
from backend.scoring.pruning.sims_sampling import DEFAULT_SIMS_SAMPLING


@pytest.fixture(scope="module")
def inputs() -> ScoreInputs:
    """200 digits with synthetic training dynamics (6 epochs, each sample learnt at its own speed)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    rng = np.random.default_rng(0)
    n, n_epochs = 200, 6
    y = data.target[:n]
    logits = rng.normal(size=(n_epochs, n, 10))
    logits[:, np.arange(n), y] += np.arange(n_epochs)[:, None] * rng.uniform(0.2, 2.0, size=n)
    return ScoreInputs(labels=y, embeddings=data.data[:n].astype(np.float32), logits=logits)


def test_method_parameters_come_from_the_procedures() -> None:
    assert method_parameters("d2:aum") == {"k": 10, "gamma_forward": 1.0, "gamma_reverse": 1.0}
    assert method_parameters("ccs") == {"beta": 0.0, "n_strata": 50}
    assert method_parameters("sims:ensemble") == DEFAULT_SIMS_SAMPLING.to_dict()
    assert method_parameters("keep_hard:el2n") == {}


def test_method_options_are_typed_and_checked() -> None:
    assert method_options("d2:aum", {"k": "5", "gamma_reverse": "3"}) == {
        "d2": {"k": 5, "gamma_reverse": 3.0}
    }
    sims = method_options("sims", {"knee": "0.8"})["sims"]["params"]
    assert sims == {**DEFAULT_SIMS_SAMPLING.to_dict(), "knee": 0.8}  # a plain dict: JSON in the run
    assert method_options("ccs", {}) == {}
    with pytest.raises(ValueError, match=r"no option 'gama'; its options: k \(default 10\)"):
        method_options("d2", {"gama": "3"})
    with pytest.raises(ValueError, match="its options: none"):
        method_options("random", {"k": "3"})
    with pytest.raises(ValueError, match=r"k='three': expected an integer"):
        method_options("d2", {"k": "three"})
    with pytest.raises(ValueError, match="knee must lie in"):
        method_options("sims", {"knee": "2"})
    # ranges are checked here, before any prune run starts, with the procedures' own checks
    with pytest.raises(ValueError, match="k must be >= 1"):
        method_options("d2", {"k": "0"})
    with pytest.raises(ValueError, match="n_strata must be >= 1"):
        method_options("ccs", {"n_strata": "-3"})
    with pytest.raises(ValueError, match=r"beta .* must lie in \[0, 1\)"):
        method_options("ccs", {"beta": "2"})
    for text in ("nan", "inf", "-inf"):
        with pytest.raises(ValueError, match="expected a finite number"):
            method_options("d2", {"gamma_forward": text})


def test_method_options_change_the_kept_set(inputs: ScoreInputs) -> None:
    def kept(options: dict) -> np.ndarray:
        return prune("d2:el2n", 0.5, labels=inputs.labels, inputs=inputs, options=options)

    plain = kept({})
    np.testing.assert_array_equal(kept(method_options("d2", {"gamma_reverse": "1"})), plain)
    assert not np.array_equal(kept(method_options("d2", {"gamma_reverse": "20"})), plain)
