"""Collapse: how close the features are to neural collapse (Papyan et al. 2020)."""

import streamlit as st

from app import data, state
from app.components import collapse_panel
from app.components.markdown_text import md
from app.components.score_runs import require_score_run
from app.components.workspace import require_workspace
from backend.storage import StorageError

root, ws = require_workspace()
st.title("Neural collapse")
run_id = require_score_run(root, ws.root, key=state.COLLAPSE_RUN)
try:
    summary = data.collapse_summary(root, run_id)
except StorageError as exc:
    st.info(f"{md(exc)}: pick another score run, or rerun `thresher score --workspace {ws.root}`.")
    st.stop()
source_column, download_column = st.columns([3, 1])
with source_column:
    source = collapse_panel.choose_source(summary)
with download_column:
    collapse_panel.download(summary, run_id)
metrics = summary["sources"][source]
collapse_panel.headline(metrics)
note = collapse_panel.imbalance_note(metrics)
if note:
    st.warning(note)
collapse_panel.probe_curve(summary)
collapse_panel.per_class(metrics)
run_summary = data.score_runs(root).set_index("run_id").loc[run_id, "summary"] or {}
collapse_panel.per_sample(data.collapse_samples(root, run_id, collapse_panel.SAMPLE_ROWS),
                          data.collapse_ratios(root, run_id), run_summary.get("nc_sample_source"), root=root,
                          score_run=run_id)
