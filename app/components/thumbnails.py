"""A grid of sample thumbnails with their labels as captions."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import streamlit as st

ThumbnailLoader = Callable[[str, int], "np.ndarray | None"]


#: White margin around each thumbnail so neighbours do not touch (``st.image`` lists have no gap).
MARGIN = 3


def with_margin(image: np.ndarray) -> np.ndarray:
    return np.pad(image, ((MARGIN, MARGIN), (MARGIN, MARGIN), (0, 0)), constant_values=255)


def placeholder(size: int) -> np.ndarray:
    """A light grey square shown where a sample has no readable image."""
    return np.full((size, size, 3), 225, dtype=np.uint8)


def thumbnail_grid(samples: pd.DataFrame, load: ThumbnailLoader, *, size: int = 64) -> None:
    """Show each row of ``samples`` (columns id, label, path) as an image captioned by its label.

    ``load(path, size)`` returns an RGB array or ``None``; rows with a null path or an
    unreadable file get a grey placeholder whose caption says so.
    """
    images: list[np.ndarray] = []
    captions: list[str] = []
    for row in samples.itertuples(index=False):
        label = "(none)" if pd.isna(row.label) else str(row.label)
        image = None if pd.isna(row.path) or not row.path else load(str(row.path), size)
        if image is None:
            images.append(placeholder(size))
            why = "no image" if pd.isna(row.path) or not row.path else "unreadable"
            captions.append(f"{label} ({why})")
        else:
            images.append(image)
            captions.append(label)
    if images:
        st.image([with_margin(i) for i in images], caption=captions, width=size + 2 * MARGIN)
