"""The Export page's share of the data access: the curated manifest's counts and first rows, a
score run's scores as exported, and their download bytes (made with
:func:`app.data.cached_reader`: keyed on the tables they read). Download bytes are made when the
button is clicked (:func:`deferred`), not each time the page is drawn."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from app.data import cached_reader, export_bytes, open_workspace
from backend.storage import export, score_export


@cached_reader("samples", "subsets", "decisions", max_entries=16)
def manifest_preview(root: str, subset: str | None, include_dropped: bool, limit: int) -> export.ManifestPreview:
    """``export.manifest_preview``: the export's counts and its first ``limit`` rows (DuckDB, no
    whole manifest); raises ``NotFoundError`` for an unknown subset."""
    return export.manifest_preview(open_workspace(root), subset=subset, include_dropped=include_dropped, limit=limit)


def deferred(make: Callable[..., bytes], root: str, *args: object) -> Callable[[], bytes]:
    """``make(root, *args)`` as a callable for ``st.download_button(data=...)``: Streamlit calls it
    when the button is clicked, so drawing the page never serialises a whole export."""
    return lambda: make(root, *args)


def manifest_download(root: str, subset: str | None, fmt: str, include_dropped: bool) -> Callable[[], bytes]:
    """The curated manifest's download (:func:`app.data.export_bytes`), made on click."""
    return deferred(export_bytes, root, subset, fmt, include_dropped)


@cached_reader("scores", "label_issues", "samples", "runs", max_entries=4)
def scores_table(root: str, run_id: str) -> pd.DataFrame:
    """``score_export.scores_frame``: one row per scored sample, the verdict and every score."""
    return score_export.scores_frame(open_workspace(root), run_id)


@cached_reader("scores", "label_issues", "samples", "runs", max_entries=8)
def scores_shape(root: str, run_id: str) -> tuple[int, int]:
    """``score_export.scores_shape``: (rows, columns) of :func:`scores_table`, counted in DuckDB."""
    return score_export.scores_shape(open_workspace(root), run_id)


@cached_reader(scores_table, max_entries=4)
def scores_bytes(root: str, run_id: str, fmt: str) -> bytes:
    """:func:`scores_table` as ``fmt`` bytes (Parquet with its provenance record in the metadata)."""
    return score_export.scores_download(open_workspace(root), run_id, fmt)
