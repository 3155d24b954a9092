"""Jobs: start embed, project, score, prune and evaluate in their own processes, and follow them."""

import streamlit as st

from app.components import jobs_panel
from app.components.workspace import require_workspace

root, ws = require_workspace()
st.title("Jobs")
st.caption("Each job is a `thresher` command in its own process: it goes on if you leave this page, reload the "
           f"browser or restart the app, and keeps its log and status in `{ws.jobs_dir}`.")
jobs_panel.start_forms(root)
jobs_panel.started_notice()
st.subheader("Jobs")
jobs_panel.job_list(root)
