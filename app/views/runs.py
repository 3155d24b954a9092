"""Runs: every stored computation, two of one kind compared, and deleting one."""

import streamlit as st

from app import data
from app.components import runs_panel
from app.components.markdown_text import md
from app.components.workspace import require_workspace
from backend.storage.errors import StorageError

root, ws = require_workspace()
st.title("Runs")
st.caption("Every computation (ingest, embed, project, score, prune, evaluate) is a run, stored with its config, "
           "embedding, seed, time and code version.")
runs_panel.deleted_notice()
all_runs = data.run_list(root, None)
if all_runs.empty:
    st.info(f"No runs yet: start with `thresher ingest --workspace {ws.root} SOURCE`.")
    st.stop()
runs_panel.run_list(all_runs)

st.subheader("Compare two runs")
pair = runs_panel.choose_pair(all_runs)
if pair is not None:
    try:
        comparison = data.run_comparison(root, *pair)
    except StorageError as exc:
        st.error(md(exc))
    else:
        runs_panel.comparison(comparison, root)

st.subheader("Delete a run")
runs_panel.delete_form(root, all_runs)
