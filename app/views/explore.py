"""Explore: the 2-D map of an embedding, coloured by label, split, decision, a tag or a score run's
verdict and scores, narrowed by filters. A click opens a sample; a box or lasso selection can be
decided on, saved as a subset and browsed page by page. Above a point budget the map is a density
image drawn on the server (``app/components/density_view.py``)."""

import streamlit as st

from app import data, explore_data
from app.components import density_view, explore_controls
from app.components.workspace import require_workspace

root, ws = require_workspace()
st.title("Explore")
project_runs = data.projection_runs(root)
if project_runs.empty:
    st.info(
        f"No projection yet: run `thresher project --workspace {ws.root}` (or `thresher demo`)."
    )
    st.stop()

score_runs = data.score_runs(root)
run_column, score_column = st.columns(2)  # two per row: a score run's label is long
color_column, _ = st.columns(2)
with run_column:
    run_id = explore_controls.choose_run(project_runs)
with score_column:
    score_run = explore_controls.choose_score_run(score_runs)
with color_column:
    choices = explore_controls.color_choices(score_runs, score_run, explore_data.tag_names(root))
    color_by = explore_controls.choose_color(choices)
filters = explore_controls.choose_filters(
    *explore_data.label_and_split_names(root, run_id), explore_data.tag_names(root), choices,
    lambda score: explore_data.score_bounds(root, run_id, score_run, score),
)
density_view.show_explore_map(root, run_id, score_run, color_by, filters)
