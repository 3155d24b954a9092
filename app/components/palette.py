"""Category ordering and colours shared by the charts, so a class keeps its colour everywhere."""

from __future__ import annotations

import re
from collections.abc import Iterable

import plotly.colors

_QUALITATIVE = (
    plotly.colors.qualitative.Plotly
    + plotly.colors.qualitative.Dark24
    + plotly.colors.qualitative.Light24
)
_NUMBER = re.compile(r"(\d+)")


def _natural_key(value: str) -> list[object]:
    return [int(part) if part.isdigit() else part.lower() for part in _NUMBER.split(value)]


def natural_order(values: Iterable[object]) -> list[str]:
    """Sorted as people expect: ``2`` before ``10``, case-insensitive."""
    return sorted({str(v) for v in values}, key=_natural_key)


def category_colors(categories: list[str]) -> dict[str, str]:
    """One distinct colour per category (cycling after 58 categories)."""
    return {c: _QUALITATIVE[i % len(_QUALITATIVE)] for i, c in enumerate(categories)}
