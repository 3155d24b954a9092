"""Text-to-image search: the query is embedded by the same open_clip model as the images."""

from __future__ import annotations

import numpy as np
import pandas as pd

from backend.jobs.embed_job import normalise_rows
from backend.jobs.project_job import default_embedding_key
from backend.storage import runs
from backend.storage.errors import NotFoundError
from backend.storage.workspace import Workspace


def text_search(ws: Workspace, text: str, *, embedding_key: str | None = None, top: int = 10) -> pd.DataFrame:
    """The ``top`` samples whose image embedding is most similar (cosine) to ``text``."""
    from backend.embed import get_embedder

    key = embedding_key or default_embedding_key(ws)
    embed_runs = runs.list_runs(ws, "embed")
    made = embed_runs[(embed_runs["embedding_key"] == key) & (embed_runs["status"] == "done")]
    if made.empty:
        raise NotFoundError(f"no finished embed run made {key!r}, so its model is unknown; embed with a CLIP model")
    config = made.iloc[0]["config"]
    embedder = get_embedder(config["model"], config.get("pretrained"))
    query, _ = normalise_rows(embedder.encode_texts([text]))
    ids, vectors, _ = ws.load_embeddings(key)
    similarity = vectors @ query[0]
    order = np.argsort(-similarity)[:top]
    samples = ws.samples(columns=["id", "label", "path"]).set_index("id")
    hits = samples.loc[ids[order]].reset_index()
    hits.insert(1, "similarity", similarity[order].round(4))
    return hits
