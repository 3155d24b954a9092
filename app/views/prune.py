"""Prune: keep a fraction of the scored samples by a pruning procedure, as a named subset."""

import streamlit as st

from app import data, prune_data, state
from app.components import evaluate_panel, overview, prune_panel
from app.components.score_runs import require_score_run
from app.components.workspace import require_workspace

root, ws = require_workspace()
st.title("Prune")
run_id = require_score_run(root, ws.root, key=state.PRUNE_RUN)
request = prune_panel.controls(prune_data.pool_summary(root, run_id),
                               lambda split: prune_data.decided_in_pool(root, run_id, split))
prune_panel.run_button(root, request, score_run=run_id)
done = state.last_prune(root)
if done is not None:
    prune_panel.result(root, done)
evaluate_panel.section(root, done)
overview.runs_table("Prune runs", data.run_list(root, "prune"), empty_hint="No prune runs yet.")
