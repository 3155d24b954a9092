"""Duplicates: exact copies and near duplicates in groups; keep one, drop the rest."""

import streamlit as st

from app import curation_data
from app.components import duplicates_panel
from app.components.workspace import require_workspace

root, ws = require_workspace()
st.title("Duplicates")
st.caption("Exact copies share a content hash; near duplicates are connected by embedding cosine similarity at "
           "least the threshold. By default the rule is chosen on the data: ten times closer than the median sample "
           "is to its nearest neighbour, or a pair (or small group) of each other's nearest neighbours more than three "
           "times closer to each other than to anything else, within half that median distance. Keeping one member "
           "of a group writes `drop` decisions for the others, so they leave every prune and export (undo them on "
           "the sample view or with `thresher decide undo`).")
keys = ws.embedding_keys()
left, right = st.columns([1, 2])  # the toggle above the slider or the rule: its label fits a narrow window
key = left.selectbox("Embedding", keys, index=len(keys) - 1, key="dup.embedding") if keys else None
automatic = right.toggle("Threshold from the data", value=True, key="dup.auto")
groups, threshold = curation_data.duplicate_groups(root, key, None)  # cached: the slider starts from its threshold
chosen = None if automatic else right.slider("Near-duplicate threshold (cosine)", 0.80, 1.0,
                                             min(max(round(threshold, 4), 0.80), 1.0), step=0.0001, format="%.4f",
                                             key="dup.threshold")
if chosen is not None:
    groups, threshold = curation_data.duplicate_groups(root, key, chosen)
rule = f"cosine ≥ {threshold:.4f}" + (", or set apart from the rest" if automatic else "")
if automatic:
    right.caption(f"Chosen on the data: {rule}")
if groups.empty:
    st.info(f"No duplicates at {rule}"
            + ("" if keys else " (and no embedding yet: `thresher embed`)") + ".")
    st.stop()
duplicates_panel.groups_view(root, groups, curation_data.states(root), set_apart_under=threshold if automatic else None)
