"""Plotly charts of a scoring run (Review, Prune, Collapse), built from plain DataFrames; every
class, score and arm name is escaped (:mod:`app.components.plot_text`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from app.components.palette import category_colors, natural_order
from app.components.plot_text import escape, escape_all, template_text

MARGIN = dict(l=10, r=10, t=40, b=10)
KEPT_COLOR = "#2ca02c"
REMOVED_COLOR = "#d62728"
BEFORE_COLOR = "#c7c7c7"


def _labels(values: pd.Series) -> pd.Series:
    return values.fillna("(none)").astype(str)


def flagged_by_class(shown: pd.DataFrame, totals: pd.Series) -> go.Figure:
    """Bars of shown samples per given class (column ``label``); the hover gives the share of
    that class (``totals``: samples per class in the run)."""
    return counts_by_class(_labels(shown["label"]).value_counts(), totals)


def counts_by_class(counts: pd.Series, totals: pd.Series) -> go.Figure:
    """:func:`flagged_by_class` from the counts: ``counts`` (shown samples per given class,
    counted in SQL at scale) over ``totals`` (samples per class in the run)."""
    classes = natural_order(totals.index)
    flagged = counts.reindex(classes, fill_value=0)
    share = flagged / totals.reindex(classes).clip(lower=1)
    fig = go.Figure(
        go.Bar(
            x=escape_all(classes),
            y=flagged.to_numpy(),
            customdata=np.round(100 * share.to_numpy(), 1),
            hovertemplate="class %{x}: %{y} (%{customdata}% of the class)<extra></extra>",
            marker_color=REMOVED_COLOR,
        )
    )
    fig.update_layout(
        title="Shown samples by given class",
        xaxis_title="given label",
        yaxis_title="samples",
        xaxis_type="category",
        yaxis_tickformat="d",  # counts: no 0.5 ticks when every bar is 0 or 1
        yaxis_rangemode="tozero",
        height=340,
        margin=MARGIN,
    )
    if len(flagged) and flagged.max() <= 5:
        fig.update_yaxes(dtick=1)
    return fig


def label_confusion(shown: pd.DataFrame) -> go.Figure:
    """Heatmap of given label (rows) x suggested label (columns) over ``shown``."""
    pairs = pd.DataFrame({"label": _labels(shown["label"]), "suggested_label": _labels(shown["suggested_label"])})
    counts = pairs.groupby(["label", "suggested_label"]).size().rename("n").reset_index()
    return confusion_of_counts(counts)


def confusion_of_counts(counts: pd.DataFrame) -> go.Figure:
    """:func:`label_confusion` from the counts: one row per observed (label, suggested_label)
    pair with its count ``n`` (counted in SQL at scale; '(none)' for a missing label)."""
    rows, cols = natural_order(counts["label"].unique()), natural_order(counts["suggested_label"].unique())
    table = (counts.pivot_table(index="label", columns="suggested_label", values="n", aggfunc="sum", fill_value=0)
             .reindex(index=rows, columns=cols, fill_value=0).astype(int))
    fig = go.Figure(
        go.Heatmap(
            z=table.to_numpy(),
            x=escape_all(cols),
            y=escape_all(rows),
            text=table.to_numpy(),
            texttemplate="%{text}",
            colorscale="Reds",
            showscale=False,
            hovertemplate="given %{y} → suggested %{x}: %{z}<extra></extra>",
        )
    )
    fig.update_layout(
        title="Given label × suggested label",
        xaxis_title="suggested label",
        yaxis_title="given label",
        xaxis_type="category",
        yaxis=dict(type="category", autorange="reversed"),
        height=340,
        margin=MARGIN,
    )
    return fig


def kept_by_class(outcome: pd.DataFrame) -> go.Figure:
    """Grouped bars per class: samples before the prune and samples kept (column ``kept``)."""
    labels = _labels(outcome["label"])
    classes = natural_order(labels.unique())
    before = labels.value_counts().reindex(classes, fill_value=0)
    kept = labels[outcome["kept"].to_numpy()].value_counts().reindex(classes, fill_value=0)
    fig = go.Figure()
    fig.add_bar(x=escape_all(classes), y=before.to_numpy(), name="before", marker_color=BEFORE_COLOR)
    fig.add_bar(x=escape_all(classes), y=kept.to_numpy(), name="kept", marker_color=KEPT_COLOR)
    fig.update_layout(
        title="Samples per class, before and after",
        barmode="group",
        xaxis_title="class",
        yaxis_title="samples",
        xaxis_type="category",
        height=360,
        margin=MARGIN,
    )
    return fig


def binned(values: np.ndarray, *, bins: int, value_range: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(edges, counts) of the finite ``values`` on ``bins`` equal bins over ``value_range``
    (``np.histogram``: each bin half-open but the last, which holds its upper edge). A chart sends
    these ``bins`` counts to the browser, not one value per sample (1M floats at a million)."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    counts, edges = np.histogram(finite, bins=bins, range=value_range)
    return edges, counts


def _bin_bars(fig: go.Figure, edges: np.ndarray, counts: np.ndarray, **trace: object) -> None:
    """One bar per bin, spanning it, with its range and count on hover."""
    fig.add_bar(
        x=(edges[:-1] + edges[1:]) / 2,
        y=counts,
        width=np.diff(edges),
        customdata=np.column_stack([edges[:-1], edges[1:]]),
        hovertemplate="%{customdata[0]:.4g} to %{customdata[1]:.4g}: %{y} samples<extra></extra>",
        **trace,
    )


def _value_range(finite: np.ndarray) -> tuple[float, float]:
    if not finite.size:
        return 0.0, 1.0
    low, high = float(finite.min()), float(finite.max())
    return (low, high) if high > low else (low - 0.5, low + 0.5)


def kept_vs_removed_histogram(outcome: pd.DataFrame, score: str, *, bins: int = 40) -> go.Figure:
    """Overlaid histograms of ``score`` for kept and removed samples, on shared bins counted here
    (:func:`binned`), not in the browser."""
    values = outcome[score].to_numpy(dtype=np.float64)
    kept = outcome["kept"].to_numpy(dtype=bool)
    value_range = _value_range(values[np.isfinite(values)])
    fig = go.Figure()
    for name, mask, color in (("kept", kept, KEPT_COLOR), ("removed", ~kept, REMOVED_COLOR)):
        edges, counts = binned(values[mask], bins=bins, value_range=value_range)
        _bin_bars(fig, edges, counts, name=name, marker_color=color, opacity=0.6)
    fig.update_layout(
        title=f"{escape(score)}: kept vs removed",
        barmode="overlay",
        bargap=0,
        xaxis_title=escape(score),
        yaxis_title="samples",
        height=360,
        margin=MARGIN,
    )
    return fig


def collapse_curve(
    curve: Mapping[str, Sequence[float | None]], metrics: Sequence[str], *, log_y: bool = False
) -> go.Figure:
    """One line per metric over the probe's training epochs (falling = collapsing)."""
    colors = category_colors(list(curve))
    fig = go.Figure()
    for metric in metrics:
        values = [np.nan if v is None else v for v in curve[metric]]
        fig.add_scatter(
            x=list(range(len(values))),
            y=values,
            mode="lines+markers",
            name=escape(metric),
            line_color=colors[metric],
        )
    n_epochs = max((len(curve[m]) for m in metrics), default=1)
    fig.update_layout(
        xaxis=dict(title="epoch", dtick=max(1, n_epochs // 10)),
        yaxis_title="value (0 = collapsed)",
        yaxis_type="log" if log_y else "linear",
        height=380,
        margin=MARGIN,
        legend_title_text="metric",
    )
    return fig


def per_class_bars(values: pd.Series, metric: str) -> go.Figure:
    """Bars of one per-class metric (``values`` indexed by class)."""
    classes = natural_order(values.index)
    ordered = values.reindex(classes)
    fig = go.Figure(go.Bar(x=escape_all(classes), y=ordered.to_numpy(dtype=float), name=escape(metric)))
    fig.update_layout(
        title=f"{escape(metric)} per class",
        xaxis_title="class",
        yaxis_title=escape(metric),
        xaxis_type="category",
        height=340,
        margin=MARGIN,
    )
    return fig


def ratio_histogram(ratio: pd.Series | np.ndarray, *, bins: int = 60) -> go.Figure:
    """Histogram of the own / nearest-other class-mean distance ratio, a line at 1 (beyond it the
    nearest class mean is another class's); the top 1 % is folded into the last bin. The bins are
    counted here (:func:`binned`): the browser gets ``bins`` bars, not one value per sample."""
    values = np.asarray(ratio, dtype=np.float64)
    values = values[np.isfinite(values)]
    top = float(np.quantile(values, 0.99)) if values.size else 1.0
    folded = np.minimum(values, top)
    edges, counts = binned(folded, bins=bins, value_range=_value_range(folded))
    fig = go.Figure()
    _bin_bars(fig, edges, counts, name="samples")
    fig.add_vline(x=1.0, line_dash="dash", annotation_text="nearer another class", annotation_position="top right")
    fig.update_layout(xaxis_title="own / nearest other class-mean distance", yaxis_title="samples", bargap=0,
                      height=320, margin=MARGIN, showlegend=False)
    return fig


def recall_by_class(recall: Mapping[str, Mapping[str, float | None]], names: Mapping[str, str]) -> go.Figure:
    """Grouped bars of held-out recall (%) per class, one group member per arm of ``recall``
    ({arm: {class: recall %}}); ``names`` gives each arm's legend text."""
    fig = go.Figure()
    for arm, per_class in recall.items():
        classes = natural_order(per_class)
        name = names.get(arm, arm)
        fig.add_trace(go.Bar(x=escape_all(classes), y=[per_class[c] for c in classes], name=escape(name),
                             hovertemplate=f"class %{{x}}: %{{y:.1f}}%<extra>{template_text(name)}</extra>"))
    fig.update_layout(title="Held-out recall by class", xaxis_title="class", yaxis_title="recall %",
                      xaxis_type="category", barmode="group", height=340, margin=MARGIN,
                      legend=dict(orientation="h", y=-0.25))
    return fig
