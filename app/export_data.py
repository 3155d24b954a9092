"""The Export page's share of the data access: a score run's scores as exported, and their
download bytes (made with :func:`app.data.cached_reader`: keyed on the tables they read)."""

from __future__ import annotations

import pandas as pd

from app.data import cached_reader, open_workspace
from backend.storage import score_export


@cached_reader("scores", "label_issues", "samples", "runs", max_entries=4)
def scores_table(root: str, run_id: str) -> pd.DataFrame:
    """``score_export.scores_frame``: one row per scored sample, the verdict and every score."""
    return score_export.scores_frame(open_workspace(root), run_id)


@cached_reader(scores_table, max_entries=4)
def scores_bytes(root: str, run_id: str, fmt: str) -> bytes:
    """:func:`scores_table` as ``fmt`` bytes (Parquet with its provenance record in the metadata)."""
    return score_export.scores_download(open_workspace(root), run_id, fmt)
