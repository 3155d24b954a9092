"""Explore: the 2-D map of an embedding; a box or lasso selection shows and saves samples.

With a score run the map can also be coloured by the label-issue verdict or any score."""

import streamlit as st

from app import data, state
from app.components import explore_controls, scatter
from app.components.selection import selection_panel
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
run_column, color_column = st.columns([3, 1])
with run_column:
    run_id = explore_controls.choose_run(project_runs)
with color_column:
    color_by = explore_controls.choose_color(explore_controls.color_choices(score_runs))
score_run = explore_controls.latest_score_run(score_runs)
points = data.colored_points(root, run_id, score_run, color_by)
figure = scatter.projection_figure(points, color_by=color_by)
event = st.plotly_chart(
    figure, key=state.EXPLORE_MAP, on_select="rerun", selection_mode=("box", "lasso")
)
selection_panel(root, points, scatter.selected_ids(event.selection, figure), run_id=run_id)
