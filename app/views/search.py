"""Search: the samples most similar to a sample (also "Find similar" in any sample view), to an
uploaded image, or to a text query (CLIP embeddings); the results can be decided on and saved."""

import streamlit as st

from app.components.search_panel import search_page
from app.components.workspace import require_workspace

root, ws = require_workspace()
st.title("Search")
search_page(root, ws.root)
