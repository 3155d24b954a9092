from __future__ import annotations

import numpy as np
import pytest

from backend.jobs.embed_job import normalise_rows
from backend.scoring import vectors


@pytest.mark.parametrize("in_place", [False, True])
def test_normalise_rows_in_blocks_matches_the_direct_formula(monkeypatch, in_place: bool) -> None:
    monkeypatch.setattr(vectors, "BLOCK_ROWS", 3)  # several blocks and a short last one
    x = np.random.default_rng(0).normal(size=(8, 5)).astype(np.float32)
    x[4] = 0.0
    expected_norms = np.linalg.norm(x, axis=1)
    expected = x / np.maximum(expected_norms, 1e-12)[:, None]
    given = x.copy()
    unit, norms = normalise_rows(given, in_place=in_place)
    np.testing.assert_allclose(unit, expected, rtol=1e-6)
    np.testing.assert_allclose(norms, expected_norms, rtol=1e-6)
    assert unit.dtype == np.float32 and norms.dtype == np.float32
    assert (unit[4] == 0).all()
    assert (unit is given) == in_place
    if not in_place:
        np.testing.assert_array_equal(given, x)  # the input is left alone


def test_normalise_rows_never_writes_into_a_read_only_array() -> None:
    x = np.ones((2, 2), np.float32)
    x.flags.writeable = False
    unit, _ = normalise_rows(x, in_place=True)
    assert unit is not x and (x == 1).all()
