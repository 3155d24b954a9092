"""The Collapse page's parts: headline neural-collapse metrics of one source, the imbalance
note, the probe's training curve, per-class breakdowns and the JSON download.

Every metric is 0 under perfect neural collapse (Papyan et al. 2020) and grows as the geometry
departs from it. ``summary`` is ``score_export.collapse_summary``'s dict.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from app import data, state
from app.components import score_charts
from app.components.metric_row import metric_row

#: The headline metrics, each with a one-line explanation.
HEADLINE = {
    "nc1": ("NC1", "Within-class spread relative to between-class spread, Tr(Σ_W Σ_B⁺)/C."),
    "equinorm": ("Equinorm", "Spread of the class-mean lengths: std/mean of ‖μ_c − μ_G‖."),
    "equiangularity": ("Equiangularity", "Std of the pairwise cosines of the centred class means."),
    "max_angle": ("Max-angle", "Mean |cos + 1/(C−1)|: how far pairs are from the widest angle."),
    "etf_distance": ("ETF distance", "Distance of the centred class means to a simplex ETF."),
    "of_distance": ("OF distance", "Distance to the orthogonal frame of Dang et al. 2023."),
    "nc3": ("NC3", "Self-duality: ‖W/‖W‖ − M/‖M‖‖², classifier rows vs class means."),
    "nc4": ("NC4", "Share of samples where the classifier and the nearest class mean disagree."),
}
CURVE_DEFAULT = ("nc1", "etf_distance", "nc3", "nc4")
CLASS_DEFAULT = "within_between_ratio"
#: Above this largest/smallest class ratio the note about the orthogonal frame shows.
IMBALANCE_NOTE_ABOVE = 1.5
SOURCE_NAMES = {
    "embeddings": "embeddings (class means of the stored vectors)",
    "probe_final": "probe, last epoch (features and classifier)",
}


def source_name(source: str) -> str:
    if source.startswith("imported:"):
        return f"imported classifier {source.split(':', 1)[1]}"
    return SOURCE_NAMES.get(source, source)


def choose_source(summary: Mapping[str, Any]) -> str:
    """Which source's metrics to show; the export's headline source by default."""
    sources = [s for s in summary["sources"] if s != "probe_curve"]
    default = summary.get("headline_source")
    index = sources.index(default) if default in sources else 0
    return st.selectbox(
        "Metrics of", sources, index=index, format_func=source_name, key=state.COLLAPSE_SOURCE
    )


def format_value(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def headline(metrics: Mapping[str, Any]) -> None:
    """Eight metrics in two rows, each with its one-line explanation."""
    st.caption("0 = perfectly collapsed; higher = further from collapse.")
    names = list(HEADLINE)
    for row in (names[:4], names[4:]):
        for column, name in zip(st.columns(4), row, strict=True):
            label, explanation = HEADLINE[name]
            value = metrics.get(name)
            column.metric(label, format_value(value), help=f"`{name}`")
            column.caption(explanation + (" Needs a classifier." if value is None else ""))


def imbalance_note(metrics: Mapping[str, Any]) -> str | None:
    """The note for imbalanced classes, or ``None`` when the classes are balanced enough."""
    ratio = metrics.get("imbalance_ratio")
    if ratio is None or ratio <= IMBALANCE_NOTE_ABOVE:
        return None
    return (
        f"The classes are imbalanced (largest / smallest = {ratio:.2g}). Dang et al. 2023 predict "
        "that imbalanced data collapses to a general orthogonal frame rather than a simplex ETF: "
        f"compare the OF distance ({format_value(metrics.get('of_distance'))}) with the ETF "
        f"distance ({format_value(metrics.get('etf_distance'))}); the smaller one is the "
        "geometry the features are heading to."
    )


def probe_curve(summary: Mapping[str, Any]) -> None:
    curve = {
        name: values
        for name, values in summary["sources"].get("probe_curve", {}).items()
        if any(v is not None for v in values)
    }
    st.subheader("Probe training curve")
    if not curve:
        st.caption("This run has no probe curve (imported logits carry no features).")
        return
    choice_column, log_column = st.columns([4, 1])
    default = [m for m in CURVE_DEFAULT if m in curve] or list(curve)[:1]
    metrics = choice_column.multiselect(
        "Metrics", list(curve), default=default, key=state.COLLAPSE_CURVE_METRICS
    )
    log_y = log_column.toggle("Log scale", key=state.COLLAPSE_CURVE_LOG)
    if metrics:
        st.plotly_chart(
            score_charts.collapse_curve(curve, metrics, log_y=log_y), key="collapse.curve"
        )


def per_class_frame(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """One row per class, one column per per-class metric."""
    frame = pd.DataFrame(metrics.get("per_class") or {})
    frame.index = frame.index.astype(str)
    frame.index.name = "class"
    return frame


def per_class(metrics: Mapping[str, Any]) -> None:
    st.subheader("Per class")
    frame = per_class_frame(metrics)
    if frame.empty:
        st.caption("No per-class metrics for this source.")
        return
    columns = list(frame.columns)
    index = columns.index(CLASS_DEFAULT) if CLASS_DEFAULT in columns else 0
    left, right = st.columns(2)
    with left:
        metric = st.selectbox("Metric", columns, index=index, key=state.COLLAPSE_CLASS_METRIC)
        st.plotly_chart(score_charts.per_class_bars(frame[metric], metric), key="collapse.class")
    right.dataframe(frame.reset_index(), hide_index=True)


def download(summary: Mapping[str, Any], run_id: str) -> None:
    st.download_button(
        "Download JSON",
        data=json.dumps(summary, indent=2),
        file_name=f"collapse-{run_id}.json",
        mime="application/json",
        on_click="ignore",
        key="collapse.download",
    )


#: Rows of the per-sample table: the samples farthest from their own class mean, relatively.
SAMPLE_ROWS = 50
SAMPLE_THUMBNAIL = 48


def per_sample(samples: pd.DataFrame, ratios: np.ndarray, source: str | None, *, root: str | None = None,
               score_run: str | None = None) -> None:
    """Each sample's distance to its own class mean against the nearest other class mean:
    ``samples`` the rows with the largest ratios (the table), ``ratios`` every sample's (the
    median, the count above 1 and the histogram); with ``root``, clicking a row of the table
    opens that sample's view."""
    st.subheader("Per sample")
    if samples.empty:
        st.caption("This score run stored no per-sample distances (runs scored before they existed); "
                   "rerun `thresher score` to get them.")
        return
    ratio = pd.Series(ratios, dtype=float)
    st.caption(f"On the features of {source_name(source) if source else 'the headline source'}: each sample's "
               "distance to its own class mean over its distance to the nearest other class mean. Below 1 "
               "the sample sits with its class; above 1 a nearest-class-mean classifier would pick another "
               "class (NC4 per sample): a possible wrong label or an ambiguous sample.")
    beyond = int((ratio > 1).sum())
    cells = [("Median ratio", format_value(float(ratio.median()))),
             ("Nearer another class", f"{beyond:,}"),
             ("Share", f"{100 * beyond / max(len(ratio), 1):.1f}%")]  # fmt: skip
    metric_row(cells)
    st.plotly_chart(score_charts.ratio_histogram(ratio), key="collapse.ratio")
    head = samples.head(SAMPLE_ROWS)
    st.caption(f"The {len(head)} samples with the largest ratio.")
    table = pd.DataFrame({
        "image": [data.thumbnail_uri(p, SAMPLE_THUMBNAIL) for p in head["path"]],
        "id": head["id"], "label": head["label"], "split": head["split"],
        "own": head["nc_own_distance"], "nearest other": head["nc_other_distance"], "ratio": head["nc_distance_ratio"],
    })  # fmt: skip
    columns = {
        "image": st.column_config.ImageColumn("image", width="small"),
        "own": st.column_config.NumberColumn(format="%.3f"),
        "nearest other": st.column_config.NumberColumn(format="%.3f"),
        "ratio": st.column_config.NumberColumn(format="%.2f"),
    }
    if root is None:
        st.dataframe(table, hide_index=True, column_config=columns)
        return
    from app.components.sample_view import clickable_table

    clickable_table(root, table, key="collapse.samples", score_run=score_run, column_config=columns)
