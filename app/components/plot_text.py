"""User text made safe for plotly: every label, class, split, tag, subset name and id a chart shows.

Plotly renders the strings of a figure (axis ticks, legend entries, titles, hover text) as its own
small HTML: ``<a href>`` becomes a live link, ``<b>``, ``<i>``, ``<br>`` and ``<span style>``
format, and text between ``$`` signs goes to MathJax when the page has it. :func:`escape` writes
``&``, ``<``, ``>`` and ``$`` as character references, which plotly shows as the characters
themselves, so a label ``<b>bold</b>`` reads ``<b>bold</b>`` and formats nothing. Escaping is
one-to-one (:func:`unescape` undoes it), so two labels never become one, and a value a chart
hands back (a point's id) maps back to the sample.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable

import pandas as pd

_REFERENCES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "$": "&#36;"})
_SPECIAL = re.compile(r"[&<>$]")


def escape(text: object) -> str:
    """``text`` as plotly shows it literally (module docstring)."""
    return str(text).translate(_REFERENCES)


def template_text(text: object) -> str:
    """:func:`escape` of ``text`` for a place in a hover template, where ``%{...}`` would be
    filled in: its ``%`` written as a reference too."""
    return escape(text).replace("%", "&#37;")


def escape_all(texts: Iterable[object]) -> list[str]:
    """:func:`escape` of each of ``texts``."""
    return [escape(text) for text in texts]


def escape_column(values: pd.Series) -> pd.Series:
    """:func:`escape` of each value (none missing: fill them first) as text; only the values that
    need it are rewritten (a map's hundreds of thousands of ids cost one vectorised search)."""
    text = values.astype(str)
    marked = text.str.contains(_SPECIAL)
    return text.where(~marked, text[marked].map(escape)) if marked.any() else text


def unescape(text: str) -> str:
    """The text :func:`escape` made ``text`` from."""
    return html.unescape(text)
