"""The pruning benchmark's paired statistics on constructed hits with known answers."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_pruning", ROOT / "bench" / "pruning.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_sign_test_known_values(bench) -> None:
    assert bench.sign_test_p(0, 0) == 1.0
    assert bench.sign_test_p(3, 3) == 1.0
    assert bench.sign_test_p(10, 0) == pytest.approx(2 / 2**10)  # two-sided, all ten one way
    assert bench.sign_test_p(2, 4) == pytest.approx(0.6875)  # 2 * (1 + 6 + 15) / 64
    assert 0 < bench.sign_test_p(900, 1100) < 1e-4  # large counts: no float overflow


def test_paired_counts_are_labelled_by_the_compared_methods(bench) -> None:
    truth = np.ones(10, bool)
    first = [truth.copy(), truth.copy()]
    second = [truth.copy(), truth.copy()]
    first[0][:3] = False  # run 0: first misses 3 samples the second gets right
    second[1][5] = False  # run 1: second misses 1 sample the first gets right
    out = bench.paired(first, second, ("alt", "default"))
    assert out["right_by_alt_only"] == 1 and out["right_by_default_only"] == 3
    # per-run differences: -30 and +10 points -> mean -10, SE = std([-30, 10], ddof=1) / sqrt(2)
    assert out["difference"] == pytest.approx(-10.0)
    assert out["standard_error"] == pytest.approx(20.0)
    assert out["sign_test_p"] == pytest.approx(0.625)  # 1 vs 3 discordant
