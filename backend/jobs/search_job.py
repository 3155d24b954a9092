"""Similarity search: the samples nearest a stored sample, an image file or a text query.

The query is embedded by the same model and weights that made the embedding (read from the
finished embed run that made the key), and the neighbours come from LanceDB's vector search
(:mod:`backend.storage.vector_index`). :func:`like_search` needs no model, so the app runs it in
its own process; image and text queries load the embedder, so the app runs them as
``thresher search --image FILE / TEXT --format json`` in a child process.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from backend.jobs.embed_job import normalise_rows
from backend.jobs.project_job import default_embedding_key
from backend.storage import runs, vector_index
from backend.storage.workspace import Workspace, sql_string

#: The columns every search returns, most similar first.
RESULT_COLUMNS = ["id", "label", "similarity", "path"]


class SearchError(ValueError):
    """The query cannot be answered with this embedding; the message says what to do."""


def embed_config(ws: Workspace, key: str) -> dict | None:
    """The config (model, pretrained, ...) of the newest finished embed run that made ``key``;
    ``None`` when no embed run did (the vectors were imported)."""
    embed_runs = runs.list_runs(ws, "embed")
    if embed_runs.empty:
        return None
    made = embed_runs[(embed_runs["embedding_key"] == key) & (embed_runs["status"] == "done")]
    return None if made.empty else dict(made.iloc[0]["config"] or {})


def _query_model(ws: Workspace, key: str) -> dict:
    config = embed_config(ws, key)
    if config is None or not config.get("model"):
        raise SearchError(f"embedding {key!r} was not made by `thresher embed` (imported vectors?), so there is no "
                          "model to embed the query with; search with --like ID, or embed the images with "
                          f"`thresher embed --workspace {ws.root} --model MODEL`")
    return config


def text_search_refusal(ws: Workspace, key: str) -> str | None:
    """Why text queries cannot search ``key`` (one line), or ``None`` when they can."""
    return _text_refusal(ws, key, embed_config(ws, key))


def _text_refusal(ws: Workspace, key: str, config: dict | None) -> str | None:
    """:func:`text_search_refusal` given ``key``'s :func:`embed_config`."""
    model = (config or {}).get("model")
    if model and not str(model).startswith("pixels"):
        return None
    made_by = f"the {model!r} embedder, which has no text encoder" if model else "no embed run (imported vectors)"
    return (f"Text search needs a CLIP model with a text tower; embedding {key!r} was made by {made_by}. Embed "
            f"with one, e.g. `thresher embed --workspace {ws.root} --model ViT-B-32 --pretrained openai`, then "
            "search its key (ViT-B-32__openai).")


def _results(ws: Workspace, hits: pd.DataFrame) -> pd.DataFrame:
    """``hits`` (id, similarity) with each sample's label and path, in the same order."""
    if hits.empty:
        return pd.DataFrame(columns=RESULT_COLUMNS)
    where = "id IN (" + ", ".join(sql_string(i) for i in hits["id"]) + ")"
    samples = ws.read("samples", columns=["id", "label", "path"], where=where)
    return hits.merge(samples, on="id", how="left")[RESULT_COLUMNS]


def like_search(ws: Workspace, sample_id: str, *, embedding_key: str | None = None, top: int = 10,
                build_index: bool = True) -> pd.DataFrame:
    """The ``top`` samples most similar (cosine) to the stored vector of ``sample_id``: the sample
    itself first (similarity 1), then its duplicates and nearest neighbours. Needs no model.
    ``build_index=False`` searches without first building a missing index (the app's process)."""
    key = embedding_key or default_embedding_key(ws)
    if build_index:
        vector_index.ensure_index(ws, key)
    query = vector_index.vector_of(ws, key, sample_id)
    hits = vector_index.nearest(ws, key, query, k=top)
    itself = hits["id"] == sample_id
    return _results(ws, pd.concat([hits[itself], hits[~itself]], ignore_index=True))


def image_search(ws: Workspace, image_path: str | Path, *, embedding_key: str | None = None,
                 top: int = 10) -> pd.DataFrame:
    """The ``top`` samples most similar (cosine) to the image file ``image_path``, embedded with
    the model and weights that made ``embedding_key`` (a pixels embedder too)."""
    from backend.embed import get_embedder

    key = embedding_key or default_embedding_key(ws)
    image_path = Path(image_path)
    if not image_path.is_file():
        raise FileNotFoundError(f"no image file {image_path}")
    config = _query_model(ws, key)
    embedder = get_embedder(config["model"], config.get("pretrained"))
    (batch,) = list(embedder.iter_batches([str(image_path)], batch_size=1))
    if batch.failed:
        raise SearchError(f"cannot read {image_path} as an image: {batch.failed[0][1]}")
    query, _ = normalise_rows(batch.vectors)
    vector_index.ensure_index(ws, key)
    return _results(ws, vector_index.nearest(ws, key, query[0], k=top))


def text_search(ws: Workspace, text: str, *, embedding_key: str | None = None, top: int = 10) -> pd.DataFrame:
    """The ``top`` samples whose image embedding is most similar (cosine) to ``text`` (CLIP models
    only: :func:`text_search_refusal` says why others cannot)."""
    from backend.embed import get_embedder

    key = embedding_key or default_embedding_key(ws)
    vector_index.embedding_table(ws, key)  # an unknown key is refused first, naming the stored ones
    config = embed_config(ws, key)
    refusal = _text_refusal(ws, key, config)
    if refusal:
        raise SearchError(refusal)
    assert config is not None  # no refusal: an embed run with a CLIP model made the key
    embedder = get_embedder(config["model"], config.get("pretrained"))
    query, _ = normalise_rows(embedder.encode_texts([text]))
    vector_index.ensure_index(ws, key)
    return _results(ws, vector_index.nearest(ws, key, np.asarray(query[0]), k=top))
