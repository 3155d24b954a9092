"""Plotly charts built from plain DataFrames (user text escaped: :mod:`app.components.plot_text`)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from app.components.palette import category_colors, natural_order
from app.components.plot_text import escape, escape_all


def class_histogram(label_split: pd.DataFrame, *, stack_by_split: bool) -> go.Figure:
    """Bar chart of samples per class from columns label, split, n; stacked by split if asked."""
    labels = natural_order(label_split["label"].fillna("(none)").astype(str).unique())
    frame = label_split.assign(label=label_split["label"].fillna("(none)").astype(str))
    fig = go.Figure()
    if stack_by_split:
        splits = natural_order(frame["split"].astype(str).unique())
        colors = category_colors(splits)
        for split in splits:
            part = (
                frame[frame["split"] == split].set_index("label")["n"].reindex(labels, fill_value=0)
            )
            fig.add_bar(x=escape_all(labels), y=part.to_numpy(), name=escape(split), marker_color=colors[split])
        fig.update_layout(barmode="stack", legend_title_text="split")
    else:
        totals = frame.groupby("label")["n"].sum().reindex(labels, fill_value=0)
        fig.add_bar(x=escape_all(labels), y=totals.to_numpy(), name="samples")
    fig.update_layout(
        xaxis_title="class",
        yaxis_title="samples",
        xaxis_type="category",
        height=360,
        margin=dict(l=10, r=10, t=30, b=10),
    )
    return fig
