"""User text made safe for Streamlit's markdown (``st.markdown``, ``st.caption``, alerts).

A label ``[click](http://example.com)`` would render as a live link, ``**x**`` as bold and
``$x$`` as LaTeX. :func:`md` puts a backslash before every character markdown gives a meaning
to, so the text reads exactly as typed. Streamlit renders no raw HTML here (``unsafe_allow_html``
stays off), so ``<b>`` already shows literally.
"""

from __future__ import annotations

import re

_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def md(text: object) -> str:
    """``text`` as markdown shows it literally."""
    return _SPECIAL.sub(r"\\\1", str(text))


def code(text: object) -> str:
    """``text`` as an inline code span, which markdown shows literally (a path, an id); a backtick
    inside would end the span early, so it shows as ``'``."""
    return "`" + str(text).replace("`", "'") + "`"
