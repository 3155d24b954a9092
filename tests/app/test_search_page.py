"""AppTest for the Search page: a search by sample (from the sample view's "Find similar"), the
results' gallery and actions, the text mode's refusal on pixel embeddings, and the image search
that runs ``thresher search --image`` in a child process."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from app import search_data
from backend.config import EmbedSettings
from backend.jobs.embed_job import embed
from backend.storage import StorageError, Workspace, decisions, runs
from tests.app.app_testkit import EMBEDDING_KEY, N_SAMPLES

SEARCH = "views/search.py"


def open_search(app_on, workspace: Path, **state) -> AppTest:
    at = app_on(workspace)
    at.switch_page(SEARCH)
    for key, value in state.items():
        at.session_state[key.replace("__", ".")] = value
    return at.run()


def button(at: AppTest, text: str):
    (found,) = [b for b in at.button if b.label.startswith(text)]
    return found


def test_search_page_is_in_the_navigation(app_on, app_workspace: Path) -> None:
    at = app_on(app_workspace, SEARCH)
    assert at.title[0].value == "Search"
    assert at.radio(key="search.mode").value == "Similar to a sample"
    assert not at.subheader  # no query yet: no results


def test_find_similar_shows_the_sample_first_with_scores(app_on, scored_workspace: Path) -> None:
    ws = Workspace.open(scored_workspace)
    samples = ws.samples(columns=["id", "label"]).sort_values("id")
    query, label = samples.iloc[4]["id"], samples.iloc[4]["label"]
    at = open_search(app_on, scored_workspace, search__like_id=query)  # what "Find similar" sets
    assert not at.exception
    assert at.text_input(key="search.like_id").value == query
    assert at.subheader[0].value == f"{N_SAMPLES} results"
    (grid,) = at.get("image")
    assert len(grid.value) == N_SAMPLES
    assert grid.captions[0].startswith(f"{label} · sim 1 · issue ")  # the sample itself, its score
    similarities = [float(c.split("sim ")[1].split(" ")[0]) for c in grid.captions]
    assert similarities == sorted(similarities, reverse=True)
    assert at.selectbox(key="search.gallery.open.pick").options[0] == query  # its sample view


def test_find_similar_switches_to_the_sample_mode(app_on, app_workspace: Path) -> None:
    at = open_search(app_on, app_workspace)
    at.radio(key="search.mode").set_value("Text query").run()
    query = sorted(Workspace.open(app_workspace).sample_ids())[0]
    at.session_state["search.like_id"] = query
    at.run()
    assert at.radio(key="search.mode").value == "Similar to a sample"
    assert at.subheader[0].value == f"{N_SAMPLES} results"


def test_an_unknown_sample_id_is_named(app_on, app_workspace: Path) -> None:
    at = open_search(app_on, app_workspace, search__like_id="no-such-id")
    assert not at.exception
    assert "no sample 'no\\-such\\-id' in this workspace" in at.error[0].value  # the id as typed (escaped)


def test_typed_text_in_an_error_stays_text(app_on, app_workspace: Path) -> None:
    """An id typed as markdown showed as a live link in the error (QA)."""
    at = open_search(app_on, app_workspace, search__like_id="[z](http://evil.example)")
    assert not at.exception
    assert "\\[z\\]\\(http\\:" in at.error[0].value and "](http" not in at.error[0].value


def test_actions_on_results_write_decisions_from_search(app_on, writable_scored_workspace: Path) -> None:
    ws = Workspace.open(writable_scored_workspace)
    query = sorted(ws.sample_ids())[0]
    at = open_search(app_on, writable_scored_workspace, search__like_id=query, search__top=5)
    assert at.subheader[0].value == "5 results"
    at.selectbox(key="search.actions.action").set_value("tag").run()
    at.text_input(key="search.actions.tag").input("looks-alike").run()  # the button takes the tag on redraw
    button(at, "Apply to 5 samples").click().run()
    assert not at.exception
    log = decisions.read_log(ws)
    assert len(log) == 5 and query in set(log["sample_id"])
    assert set(log["action"]) == {"tag"} and set(log["source"]) == {"search"}
    assert set(log["new_value"]) == {"looks-alike"}
    assert set(log["score_run"]) == {runs.latest_run(ws, "score")["run_id"]}

    at.text_input(key="search.subset_name").input("alike")
    button(at, "Save 5 samples").click().run()
    assert "Saved subset 'alike' (5 samples)" in at.success[-1].value


def test_text_search_on_pixel_embeddings_says_why_in_one_line(app_on, app_workspace: Path) -> None:
    at = open_search(app_on, app_workspace)
    at.radio(key="search.mode").set_value("Text query").run()
    assert not at.exception
    (info,) = at.info
    assert "Text search needs a CLIP model" in info.value and "\n" not in info.value
    assert EMBEDDING_KEY in info.value and "thresher embed" in info.value
    assert not [t for t in at.text_input if t.key == "search.text"]


def test_image_mode_offers_an_upload(app_on, app_workspace: Path) -> None:
    at = open_search(app_on, app_workspace)
    at.radio(key="search.mode").set_value("Similar to an image").run()
    assert not at.exception
    assert at.get("file_uploader")


def png_bytes(path: str) -> bytes:
    buffer = io.BytesIO()
    Image.open(path).save(buffer, format="PNG")
    return buffer.getvalue()


def test_image_search_runs_in_a_child_process(writable_workspace: Path) -> None:
    ws = Workspace.open(writable_workspace)
    embed(ws, EmbedSettings(model="pixels-4"), show_progress=False)
    samples = ws.samples(columns=["id", "path"]).sort_values("id")
    query, path = samples.iloc[7]["id"], samples.iloc[7]["path"]
    hits = search_data.by_image(str(writable_workspace), "pixels-4", "upload.png", png_bytes(path), 3)
    assert hits["id"].iloc[0] == query and hits["similarity"].iloc[0] == pytest.approx(1.0, abs=1e-4)
    assert list(hits.columns) == ["id", "label", "similarity", "path"]
    with pytest.raises(StorageError, match="not made by `thresher embed`"):  # the app kit's vectors
        search_data.by_image(str(writable_workspace), EMBEDDING_KEY, "upload.png", png_bytes(path), 3)


def test_the_app_process_never_imports_torch() -> None:
    import subprocess
    import sys

    code = ("import sys, app.search_data, app.components.search_panel, app.explore_data; "
            "print(sorted(m for m in ('torch', 'open_clip', 'backend.embed') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout
    assert out.strip() == "[]"


def test_a_gallery_caption_names_the_samples_decision() -> None:
    """QA: a dropped sample among the search results looked like any other."""
    from app.components.gallery import caption

    shown = ("similarity", "label_issue_score")
    row = pd.Series({"id": "a", "label": "7", "similarity": 0.93, "label_issue_score": np.nan, "decision": "dropped"})
    assert caption(row, shown) == "7 · sim 0.93 · dropped"
    assert caption(row.drop("decision"), shown) == "7 · sim 0.93"
    assert caption(pd.Series({**row.to_dict(), "decision": None}), shown) == "7 · sim 0.93"
