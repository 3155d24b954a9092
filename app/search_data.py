"""The Search page's reads. A search by sample runs here (LanceDB's vector search over stored
vectors: no model); a search by image or text embeds the query with the embedding's model, so
it runs ``thresher search ... --format json`` in a child process (:mod:`app.cli_jobs`) and the
app never loads torch."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from app import data, explore_data
from app.cli_jobs import run_cli
from backend.jobs import search_job
from backend.jobs.project_job import default_embedding_key
from backend.storage.schemas import embedding_table_name

Versions = data.Versions


def embedding_keys(root: str) -> list[str]:
    return data.open_workspace(root).embedding_keys()


def default_key(root: str) -> str:
    """The embedding searched unless the user picks another (the latest embedded one)."""
    return default_embedding_key(data.open_workspace(root))


def text_refusal(root: str, key: str) -> str | None:
    """Why text queries cannot search ``key`` (one line), or ``None`` when they can."""
    return _cached_text_refusal(root, key, data.table_versions(root, ("runs",)))


@st.cache_data(show_spinner=False, max_entries=16)
def _cached_text_refusal(root: str, key: str, versions: Versions) -> str | None:
    return search_job.text_search_refusal(data.open_workspace(root), key)


def like(root: str, key: str, sample_id: str, top: int) -> pd.DataFrame:
    """:func:`search_job.like_search` (id, label, similarity, path); raises ``StorageError``
    naming the id when it has no vector. Never builds the index here (that is a job's work)."""
    versions = data.table_versions(root, (embedding_table_name(key), "samples"))
    return _cached_like(root, key, sample_id, top, versions)


@st.cache_data(show_spinner=False, max_entries=32)
def _cached_like(root: str, key: str, sample_id: str, top: int, versions: Versions) -> pd.DataFrame:
    return search_job.like_search(data.open_workspace(root), sample_id, embedding_key=key, top=top,
                                  build_index=False)


def _parse(output: str) -> pd.DataFrame:
    return pd.DataFrame(json.loads(output), columns=search_job.RESULT_COLUMNS)


def by_image(root: str, key: str, file_name: str, content: bytes, top: int) -> pd.DataFrame:
    """The samples most similar to an uploaded image: written to a temporary file and searched
    with ``thresher search --image`` in a child process; raises ``StorageError`` with its reason."""
    with tempfile.TemporaryDirectory(prefix="thresher-search-") as folder:
        path = Path(folder) / f"query{Path(file_name).suffix.lower() or '.png'}"
        path.write_bytes(content)
        output = run_cli(["search", "--workspace", root, "--image", str(path), "--embedding", key,
                          "--top", str(top), "--format", "json"])
    return _parse(output)


def by_text(root: str, key: str, text: str, top: int) -> pd.DataFrame:
    """The samples most similar to ``text`` (``thresher search TEXT`` in a child process)."""
    output = run_cli(["search", "--workspace", root, text, "--embedding", key, "--top", str(top),
                      "--format", "json"])
    return _parse(output)


def result_rows(root: str, hits: pd.DataFrame, score_run: str | None) -> pd.DataFrame:
    """``hits`` in their order with each sample's current label, path, decision, tags and, with a
    score run, its scores (:func:`explore_data.gallery_rows`), plus ``similarity``."""
    rows = explore_data.gallery_rows(root, hits["id"].tolist(), score_run)
    return rows.merge(hits[["id", "similarity"]], on="id", how="left")
