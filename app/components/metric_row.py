"""A row of ``st.metric`` cells, side by side: the headline numbers of several pages."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st


def metric_row(cells: Sequence[tuple[str, str]]) -> None:
    """One metric per (label, value as shown), side by side, each as wide as its text; a row
    that does not fit wraps onto the next line. (Equal columns cut the values short on a narrow
    window: the Overview showed "1,…" for 1,797 samples at 1,000 px.)"""
    with st.container(horizontal=True, wrap=True, gap="medium"):
        for label, value in cells:
            st.metric(label, value, width="content")
