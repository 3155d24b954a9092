"""The Search page's parts: the query (a sample, an uploaded image or a text), and the results as a
paged gallery with labels, similarity and scores, the decision actions and save-as-subset.

A search by sample reruns with the page (it is cheap and cached); a search by image or text runs
a child process, so its results are kept in ``st.session_state[state.SEARCH_RESULTS]`` and stay
on screen while the user decides on them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from app import data, search_data, state
from app.components.decision_actions import bulk_actions
from app.components.explore_controls import choose_score_run
from app.components.gallery import paged_gallery
from app.components.markdown_text import md
from app.components.subset_form import SaveFormKeys, save_subset_form
from backend.storage import StorageError

MODES = ("Similar to a sample", "Similar to an image", "Text query")
BY_SAMPLE, BY_IMAGE, BY_TEXT = MODES
IMAGE_TYPES = ["png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff"]
DEFAULT_TOP = 48
SAVE_KEYS = SaveFormKeys("search.save_form", state.SEARCH_SUBSET_NAME, state.SEARCH_OVERWRITE)
#: The sample id the mode last switched to "Similar to a sample" for (see :func:`choose_mode`).
LIKE_SEEN = "search.like_seen"


@dataclass(frozen=True)
class Results:
    """One answered query: which mode, what was asked (shown above the results), the embedding
    searched, and the hits (id, label, similarity, path), most similar first."""

    mode: str
    query: str
    key: str
    hits: pd.DataFrame


def choose_mode() -> str:
    """The query's kind. A sample id that just arrived (the sample view's "Find similar") switches
    to "Similar to a sample"."""
    like_id = st.session_state.get(state.SEARCH_LIKE_ID)
    if like_id and like_id != st.session_state.get(LIKE_SEEN):
        st.session_state[state.SEARCH_MODE] = BY_SAMPLE
    st.session_state[LIKE_SEEN] = like_id
    return st.radio("Search by", MODES, horizontal=True, key=state.SEARCH_MODE) or BY_SAMPLE


def choose_embedding(root: str) -> str:
    keys = search_data.embedding_keys(root)
    default = search_data.default_key(root)
    if len(keys) == 1:
        st.caption(f"Embedding: `{default}`")
        return default
    return st.selectbox("Embedding", keys, index=keys.index(default), key=state.SEARCH_EMBEDDING)


def by_sample(root: str, key: str, top: int) -> Results | None:
    sample_id = st.text_input("Sample id", key=state.SEARCH_LIKE_ID,
                              placeholder="an id from Explore, Review or an export; or 'Find similar' in a sample view")
    sample_id = (sample_id or "").strip()
    if not sample_id:
        return None
    try:
        return Results(BY_SAMPLE, f"most similar to sample {sample_id}", key,
                       search_data.like(root, key, sample_id, top))
    except StorageError as exc:
        st.error(md(exc))
        return None


def _run(mode: str, query: str, key: str, search) -> None:
    """Run a child-process search and keep its results (or show why it failed)."""
    try:
        with st.spinner("Embedding the query and searching…"):
            hits = search()
    except StorageError as exc:
        st.error(f"The search failed: {md(exc)}")
        return
    st.session_state[state.SEARCH_RESULTS] = Results(mode, query, key, hits)


def by_image(root: str, key: str, top: int) -> None:
    upload = st.file_uploader("Image", type=IMAGE_TYPES, key=state.SEARCH_UPLOAD,
                              help="Embedded with the model that made the embedding, in a separate process")
    if upload is not None and st.button("Search", key="search.image_go", type="primary"):
        _run(BY_IMAGE, f"most similar to {upload.name}", key,
             lambda: search_data.by_image(root, key, upload.name, upload.getvalue(), top))


def by_text(root: str, key: str, top: int) -> None:
    refusal = search_data.text_refusal(root, key)
    if refusal:
        st.info(refusal)
        return
    with st.form("search.text_form"):
        text = st.text_input("Text", key=state.SEARCH_TEXT, placeholder="e.g. a photo of a dog")
        submitted = st.form_submit_button("Search", type="primary")
    if submitted and text.strip():
        _run(BY_TEXT, f"most similar to “{text.strip()}”", key, lambda: search_data.by_text(root, key, text.strip(), top))


def query_form(root: str) -> tuple[Results | None, str | None]:
    """The query controls; returns the results to show (or ``None``) and the score run chosen."""
    mode = choose_mode()
    key_column, top_column, run_column = st.columns([2, 1, 3])
    with key_column:
        key = choose_embedding(root)
    with top_column:
        top = int(st.number_input("Results", min_value=1, max_value=1000, value=DEFAULT_TOP, key=state.SEARCH_TOP))
    with run_column:
        score_run = choose_score_run(data.score_runs(root), key=state.SEARCH_SCORE_RUN)
    if mode == BY_SAMPLE:
        return by_sample(root, key, top), score_run
    if mode == BY_IMAGE:
        by_image(root, key, top)
    else:
        by_text(root, key, top)
    kept: Results | None = st.session_state.get(state.SEARCH_RESULTS)
    return (kept if kept is not None and kept.mode == mode else None), score_run


def results_panel(root: str, results: Results, *, score_run: str | None) -> None:
    """The hits as a gallery (label, similarity, label-issue score), the decision actions and the
    save-as-subset form."""
    rows = search_data.result_rows(root, results.hits, score_run)
    st.subheader(f"{len(rows)} results")
    st.caption(f"{results.query.capitalize()} · cosine similarity on `{results.key}`"
               + ("" if score_run else " · no score run yet: `thresher score` adds the scores"))
    if rows.empty:
        return
    ids = rows["id"].tolist()
    bulk_actions(root, ids, source="search", score_run=score_run, key=state.SEARCH_ACTIONS)
    save_subset_form(root, ids, keys=SAVE_KEYS, run_id=None, origin="search",
                     label="Save the results as subset", placeholder="e.g. like-blurry-sevens")
    scores = [c for c in rows.columns if c != "similarity" and pd.api.types.is_numeric_dtype(rows[c])
              and rows[c].notna().any()]
    paged_gallery(root, rows, key=state.SEARCH_GALLERY, sort_columns=["similarity", *scores],
                  default_sort="similarity", shown=("similarity", "label_issue_score"), score_run=score_run,
                  source="search")


def search_page(root: str, workspace_root: object) -> None:
    if not search_data.embedding_keys(root):
        st.info(f"No embeddings yet: run `thresher embed --workspace {workspace_root}` (or `thresher demo`).")
        return
    results, score_run = query_form(root)
    if results is not None:
        results_panel(root, results, score_run=score_run)
