"""The score histograms are counted on the server: the browser gets one bar per bin, whose
counts are numpy's histogram of the same values, never one value per sample."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from app.components import score_charts


def test_binned_counts_known_values_and_leaves_out_non_finite() -> None:
    edges, counts = score_charts.binned(np.array([0.0, 0.1, 0.5, 0.5, 1.0, np.nan, np.inf]), bins=2,
                                        value_range=(0.0, 1.0))
    assert edges.tolist() == [0.0, 0.5, 1.0]
    assert counts.tolist() == [2, 3]  # 0.5 opens the second bin; the last bin holds its upper edge


def _bars(fig) -> list:
    return [t for t in fig.data if t.type == "bar"]


def test_ratio_histogram_sends_numpys_bins_not_the_samples() -> None:
    rng = np.random.default_rng(0)
    ratio = np.concatenate([rng.lognormal(-0.3, 0.3, 5000), [50.0, np.nan]])  # a far outlier, a gap
    fig = score_charts.ratio_histogram(pd.Series(ratio), bins=60)
    (bars,) = _bars(fig)
    finite = ratio[np.isfinite(ratio)]
    top = np.quantile(finite, 0.99)
    expected, edges = np.histogram(np.minimum(finite, top), bins=60, range=(finite.min(), top))
    assert len(bars.y) == 60 and list(bars.y) == expected.tolist()
    assert sum(bars.y) == finite.size  # the top 1 % folded into the last bin, the NaN left out
    assert np.allclose(bars.x, (edges[:-1] + edges[1:]) / 2) and np.allclose(bars.width, np.diff(edges))
    assert fig.layout.xaxis.title.text == "own / nearest other class-mean distance"
    assert fig.layout.yaxis.title.text == "samples"
    assert not [t for t in fig.data if t.type == "histogram"]


def test_kept_vs_removed_share_bins_counted_per_group() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(size=3000)
    values[:5] = np.nan
    kept = rng.random(3000) < 0.3
    score = '<b>el2n</b>'
    fig = score_charts.kept_vs_removed_histogram(pd.DataFrame({score: values, "kept": kept}), score, bins=40)
    kept_bars, removed_bars = _bars(fig)
    assert (kept_bars.name, removed_bars.name) == ("kept", "removed")
    finite = values[np.isfinite(values)]
    for bars, mask in ((kept_bars, kept), (removed_bars, ~kept)):
        expected, edges = np.histogram(values[mask & np.isfinite(values)], bins=40, range=(finite.min(), finite.max()))
        assert list(bars.y) == expected.tolist()
        assert np.allclose(bars.x, (edges[:-1] + edges[1:]) / 2)
    assert sum(kept_bars.y) + sum(removed_bars.y) == finite.size
    assert fig.layout.barmode == "overlay"
    assert fig.layout.xaxis.title.text == "&lt;b&gt;el2n&lt;/b&gt;" and "<b>" not in fig.layout.title.text


@pytest.mark.parametrize("values", [[], [2.0, 2.0, 2.0], [np.nan]])
def test_histograms_of_empty_or_constant_scores_still_draw(values: list[float]) -> None:
    frame = pd.DataFrame({"el2n": values, "kept": [True] * len(values)})
    counts = [sum(b.y) for b in _bars(score_charts.kept_vs_removed_histogram(frame, "el2n"))]
    assert counts == [sum(np.isfinite(values)), 0]
    assert sum(_bars(score_charts.ratio_histogram(pd.Series(values, dtype=float)))[0].y) == sum(np.isfinite(values))
