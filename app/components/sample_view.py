"""The sample view: one sample's image, given and current label, every score with its meaning and
paper, its decision history, its nearest neighbours and the decision actions. Opened as a
dialog from any page (:func:`open_sample`), and drawn inline by the review queue."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import curation_data, data, state
from app.components.decision_actions import bulk_actions
from app.components.markdown_text import md
from app.components.thumbnails import placeholder, thumbnail_grid

IMAGE_SIZE = 256
NEIGHBOURS = 8
#: Where "Find similar" sends the sample id (the Search page reads it).
SEARCH_LIKE = "search.like_id"


def image(path: object, size: int = IMAGE_SIZE) -> None:
    picture = data.thumbnail(path, size) if isinstance(path, str) and path else None
    st.image(placeholder(size) if picture is None else picture, width=size,
             caption=None if picture is not None else "no readable image")


def neighbour_grid(found: pd.DataFrame, size: int = 64) -> None:
    """Neighbours' thumbnails captioned "label · cosine similarity"."""
    captions = [f"{lab} · {sim:.2f}" for lab, sim in zip(found["label"], found["similarity"], strict=True)]
    thumbnail_grid(found.assign(label=captions), data.thumbnail, size=size)


def score_table(root: str, score_run: str | None, sample_id: str) -> pd.DataFrame:
    """name, value, meaning, paper: every score ``score_run`` stored for the sample."""
    columns = ["score", "value", "meaning", "paper"]
    if score_run is None:
        return pd.DataFrame(columns=columns)
    scores = data.scores_of(root, score_run, (sample_id,))
    row = scores[scores["id"] == sample_id]
    if row.empty:
        return pd.DataFrame(columns=columns)
    values = row.iloc[0].drop(labels=["id", "label_issue"], errors="ignore")
    out = []
    for name, value in values.items():
        if name == "suggested_label":
            continue
        meaning = curation_data.meaning_of(str(name))
        out.append({"score": name, "value": value, "meaning": meaning.meaning if meaning else "",
                    "paper": meaning.paper if meaning else ""})
    return pd.DataFrame(out, columns=columns)


def leak_notice(root: str, score_run: str | None, sample_id: str, split: str | None, states: pd.DataFrame) -> None:
    """Where the score run flagged the sample as a split leak: the train sample it copies, as a
    warning while both are in the data, as a note once either is dropped."""
    source = curation_data.leak_source(root, score_run, sample_id)
    if source is None:
        return
    copy = f"this {md(split or '')} sample is a copy of train sample **{md(source)}**"
    dropped = set(states.loc[states["decision"] == "dropped", "id"])
    gone = [s for s in (sample_id, source) if s in dropped]
    if gone:
        st.info(f"Split leak, resolved: {copy}; {md(', '.join(gone))} is dropped.")
    else:
        st.warning(f"Split leak: {copy} (both are in one group on the Duplicates page; keep one there to drop "
                   "the other).")


def sample_detail(root: str, sample_id: str, *, score_run: str | None, source: str = "sample") -> None:
    row = curation_data.sample_row(root, sample_id)
    if row is None:
        st.error(f"No sample {sample_id!r} in this workspace (deleted or re-ingested under another id).")
        return
    states = curation_data.states(root)
    mine = states[states["id"] == sample_id]
    current = mine.iloc[0]["current_label"] if len(mine) and mine.iloc[0]["current_label"] else row["label"]
    decision = mine.iloc[0]["decision"] if len(mine) else None
    tags = mine.iloc[0]["tags"] if len(mine) else ""
    left, right = st.columns([1, 2])
    with left:
        image(row.get("path"))
    with right:
        st.markdown(f"**{md(sample_id)}** · split {md(row.get('split') or '(none)')} · "
                    f"{row.get('width') or '?'}×{row.get('height') or '?'} px")
        st.markdown(f"Given label **{md(row['label'])}** · current label **{md(current)}** · "
                    f"decision **{decision or 'none'}** · tags {md(tags) if tags else 'none'}")
        if row.get("path"):
            st.caption(f"`{str(row['path']).replace('`', '')}`")
        leak_notice(root, score_run, sample_id, row.get("split"), states)
        bulk_actions(root, [sample_id], source=source, score_run=score_run, key=f"sample.{sample_id}",
                     expected={sample_id: (decision, str(current))})
        if st.button("Find similar", key=f"sample.similar.{sample_id}"):
            st.session_state[SEARCH_LIKE] = sample_id
            st.switch_page("views/search.py")
    st.markdown("**Scores**")
    table = score_table(root, score_run, sample_id)
    if table.empty:
        st.caption("No score run stored scores for this sample: run `thresher score`.")
    else:
        st.dataframe(table, hide_index=True, column_config={"value": st.column_config.NumberColumn(format="%.4g")})
    st.markdown("**Decision history**")
    log = curation_data.history(root, sample_id)
    if log.empty:
        st.caption("No decision yet.")
    else:
        st.dataframe(log[["time", "action", "old_value", "new_value", "author", "source", "reason", "undone",
                          "decision_id"]], hide_index=True)
    key = curation_data.score_run_embedding(root, score_run) if score_run else None
    key = key or (data.open_workspace(root).embedding_keys() or [None])[-1]
    found = curation_data.neighbours(root, key, sample_id, k=NEIGHBOURS)
    st.markdown(f"**Nearest neighbours** ({key or 'no embedding'})")
    if found.empty:
        st.caption("This sample has no stored vector.")
    else:
        neighbour_grid(found)


@st.dialog("Sample", width="large")
def _dialog(root: str, sample_id: str, score_run: str | None, source: str) -> None:
    sample_detail(root, sample_id, score_run=score_run, source=source)


def open_sample(root: str, sample_id: str, *, score_run: str | None, source: str) -> None:
    """Open the sample view as a dialog over the page."""
    st.session_state[state.SAMPLE_VIEW_ID] = sample_id
    _dialog(root, sample_id, score_run, source)


def open_picker(root: str, ids: list[str], *, score_run: str | None, source: str, key: str) -> None:
    """A select box over ``ids`` and a button that opens the chosen sample's view."""
    if not ids:
        return
    with st.container(horizontal=True, vertical_alignment="bottom"):
        chosen = st.selectbox("Sample", ids, key=f"{key}.pick")
        if st.button("Open sample view", key=f"{key}.open"):
            open_sample(root, chosen, score_run=score_run, source=source)


def clickable_table(root: str, table: pd.DataFrame, *, key: str, score_run: str | None, source: str = "sample",
                    **dataframe_options) -> None:
    """``table`` (with an ``id`` column) where clicking a row opens that sample's view."""
    event = st.dataframe(table, key=key, on_select="rerun", selection_mode="single-row", hide_index=True,
                         **dataframe_options)
    rows = [r for r in event.selection.rows if r < len(table)]
    if rows:
        open_sample(root, str(table["id"].iloc[rows[0]]), score_run=score_run, source=source)
