"""Overview: what the workspace holds, what its latest ingest skipped, its dataset health and its
subsets."""

import streamlit as st

from app import data, overview_data, state
from app.components import charts, overview, subsets_panel
from app.components.workspace import require_workspace

root, ws = require_workspace()
go_to = st.session_state.pop(state.OVERVIEW_GO_TO, None)
if go_to:  # a health button asked for Explore coloured by its column
    st.switch_page(go_to)
st.title("Overview")
st.caption(f"Workspace `{ws.root}`")
counts = data.overview_counts(root)
overview.metrics_row(counts)
overview.ingest_report(overview_data.ingest_report(root))
if counts.samples == 0:
    st.info(
        f"This workspace has no samples yet: run `thresher ingest --workspace {ws.root} SOURCE`."
    )
    st.stop()

overview.health_summary(data.finished_runs(root, "score"))
stacked = st.toggle("Stack by split", value=True, key=state.OVERVIEW_STACK_BY_SPLIT)
st.plotly_chart(charts.class_histogram(data.label_split_counts(root), stack_by_split=stacked))
left, right = st.columns(2)
with left:
    overview.table_or_hint("Splits", data.split_counts(root), empty_hint="No splits.")
with right:
    overview.table_or_hint(
        "Embeddings",
        data.embedding_counts(root),
        empty_hint=f"No embeddings yet: run `thresher embed --workspace {ws.root}`.",
    )
overview.runs_table("Embedding runs", data.run_list(root, "embed"), empty_hint="No embed runs yet.")
overview.runs_table(
    "Projection runs",
    data.run_list(root, "project"),
    empty_hint=f"No projections yet: run `thresher project --workspace {ws.root}`.",
)
subsets_panel.subsets_section(root, data.subset_list(root))
