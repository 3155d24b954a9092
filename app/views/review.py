"""Review: the samples a score run thinks are mislabeled. The queue decides on one at a time
(accept the suggestion, keep, relabel, drop, unsure, skip, undo); the table ticks many."""

import streamlit as st

from app import curation_data, state
from app.components import decision_actions, review_panel, review_queue_panel, sample_view
from app.components.score_runs import require_score_run
from app.components.workspace import require_workspace
from backend.jobs import review_queue

root, ws = require_workspace()
st.title("Review label issues")
run_id = require_score_run(root, ws.root, key=state.REVIEW_RUN)
chosen = review_panel.choose_filter(curation_data.issue_choices(root, run_id))
view = st.segmented_control("View", ["Queue", "Table"], default="Queue", key=state.REVIEW_VIEW,
                            label_visibility="collapsed")
if view != "Table":
    review_queue_panel.queue_view(root, run_id, chosen)  # with the bulk accept, in one fragment
    st.stop()
args = review_panel.filter_args(chosen)  # counted and paged in DuckDB: no full read at 1M rows
counts = curation_data.issue_counts(root, run_id, *args)
review_panel.summary(counts)
review_panel.charts(counts)
head = review_queue.with_decisions(curation_data.shown_issues(root, run_id, *args, limit=review_panel.MAX_ROWS),
                                   curation_data.states(root))
ticked = review_panel.issue_table(head, counts.shown)
sample_view.open_picker(root, head["id"].tolist(), score_run=run_id,
                        source="review", key="review.table_open")
if ticked:
    st.markdown(f"**{len(ticked):,} ticked**")
    decision_actions.bulk_actions(root, ticked, source="review", score_run=run_id, key="review.bulk")
review_panel.save_and_download(root, lambda: curation_data.shown_issues(root, run_id, *args), ticked,
                               run_id=run_id, n_shown=counts.shown)
