"""A row of ``st.metric`` cells, side by side: the headline numbers of several pages."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st


def metric_row(cells: Sequence[tuple[str, str]]) -> None:
    """One metric per (label, value as shown), in equal columns."""
    for column, (label, value) in zip(st.columns(len(cells)), cells, strict=True):
        column.metric(label, value)
