"""Review: the samples a score run thinks are mislabeled. The queue decides on one at a time
(accept the suggestion, keep, relabel, drop, unsure, skip, undo); the table ticks many."""

import streamlit as st

from app import curation_data, data, state
from app.components import decision_actions, review_panel, review_queue_panel, sample_view
from app.components.score_runs import require_score_run
from app.components.workspace import require_workspace

root, ws = require_workspace()
st.title("Review label issues")
run_id = require_score_run(root, ws.root, key=state.REVIEW_RUN)
chosen = review_panel.choose_filter(curation_data.issue_choices(root, run_id))
view = st.segmented_control("View", ["Queue", "Table"], default="Queue", key=state.REVIEW_VIEW,
                            label_visibility="collapsed")
if view != "Table":
    review_queue_panel.queue_view(root, run_id, chosen)
    review_queue_panel.bulk_accept(root, run_id, chosen)
    st.stop()
issues = data.label_issues(root, run_id)  # every scored sample: the table view's charts and summary
shown = review_panel.apply_filter(curation_data.issues_with_decisions(root, run_id), chosen)
review_panel.summary(issues, shown)
review_panel.charts(issues, shown)
ticked = review_panel.issue_table(shown)
sample_view.open_picker(root, shown["id"].head(review_panel.MAX_ROWS).tolist(), score_run=run_id,
                        source="review", key="review.table_open")
if ticked:
    st.markdown(f"**{len(ticked):,} ticked**")
    decision_actions.bulk_actions(root, ticked, source="review", score_run=run_id, key="review.bulk")
review_panel.save_and_download(root, shown, ticked, run_id=run_id)
