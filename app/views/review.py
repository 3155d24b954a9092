"""Review: the samples a scoring run thinks are mislabeled, to inspect, save and download."""

import streamlit as st

from app import data, state
from app.components import review_panel
from app.components.score_runs import require_score_run
from app.components.workspace import require_workspace

root, ws = require_workspace()
st.title("Review label issues")
run_id = require_score_run(root, ws.root, key=state.REVIEW_RUN)
issues = data.label_issues(root, run_id)
shown = review_panel.apply_filter(issues, review_panel.choose_filter(issues))
review_panel.summary(issues, shown)
review_panel.charts(issues, shown)
ticked = review_panel.issue_table(shown)
review_panel.save_and_download(root, shown, ticked, run_id=run_id)
