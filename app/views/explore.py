"""Explore: the 2-D map of an embedding, coloured by label, split, decision, a tag or a score run's
verdict and scores. A click opens a sample; a box or lasso selection can be decided on, saved as
a subset and browsed page by page."""

import streamlit as st

from app import data, explore_data
from app.components import explore_controls, scatter, selection
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
run_column, score_column, color_column = st.columns([3, 2, 2])
with run_column:
    run_id = explore_controls.choose_run(project_runs)
with score_column:
    score_run = explore_controls.choose_score_run(score_runs)
with color_column:
    choices = explore_controls.color_choices(score_runs, score_run, explore_data.tag_names(root))
    color_by = explore_controls.choose_color(choices)
points = explore_data.map_points(root, run_id, score_run, color_by)
basis = selection.figure_basis(points, color_by)
highlight = selection.to_highlight(points, basis)
selection.show_map(scatter.projection_figure(points, color_by=color_by, selected=highlight), basis)
selection.open_clicked(root, score_run=score_run)
selection.selection_panel(root, points, selection.kept_selection(points), run_id=run_id, score_run=score_run)
