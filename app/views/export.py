"""Export: the curated manifest of the dataset or a saved subset (CSV, Parquet, JSONL or an image
folder, with its provenance), and a score run's scores."""

import streamlit as st

from app import data, export_data
from app.components import export_panel
from app.components.markdown_text import md
from app.components.workspace import require_workspace
from backend.storage import NotFoundError

root, ws = require_workspace()
st.title("Export")
source_column, format_column = st.columns([2, 1])
with source_column:
    subset = export_panel.choose_source(data.subset_list(root)["name"].tolist())
with format_column:
    fmt = export_panel.choose_format()
with_dropped = export_panel.include_dropped()
try:
    shown = export_data.manifest_preview(root, subset, with_dropped, export_panel.PREVIEW_ROWS)
except NotFoundError as exc:
    st.error(f"{md(exc)}. Pick another subset.")
    st.stop()
if shown.head.empty and not shown.dropped:
    st.info(
        f"Nothing to export: the workspace has no samples yet. Run `thresher ingest --workspace {ws.root}`."
    )
    st.stop()
export_panel.preview(shown, with_dropped=with_dropped, root=root)
export_panel.download(root, subset, fmt, with_dropped=with_dropped)
export_panel.write_to_path(root, ws, subset, fmt, with_dropped=with_dropped)
export_panel.scores_section(root, data.finished_runs(root, "score"))
