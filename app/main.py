"""Thresher's Streamlit entry point: the router and the shared sidebar, nothing else.

``thresher app --workspace W`` starts ``streamlit run app/main.py`` with ``THRESHER_WORKSPACE=W``.
"""

import streamlit as st

from app.components.workspace import workspace_sidebar

st.set_page_config(layout="wide", page_title="Thresher")

PAGES = [
    st.Page("views/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page("views/explore.py", title="Explore", icon=":material/scatter_plot:"),
    st.Page("views/review.py", title="Review", icon=":material/fact_check:"),
    st.Page("views/search.py", title="Search", icon=":material/image_search:"),
    st.Page("views/duplicates.py", title="Duplicates", icon=":material/content_copy:"),
    st.Page("views/prune.py", title="Prune", icon=":material/content_cut:"),
    st.Page("views/collapse.py", title="Collapse", icon=":material/hub:"),
    st.Page("views/export.py", title="Export", icon=":material/download:"),
    st.Page("views/runs.py", title="Runs", icon=":material/history:"),
    st.Page("views/jobs.py", title="Jobs", icon=":material/play_circle:"),
]

page = st.navigation(PAGES)
workspace_sidebar()
page.run()
