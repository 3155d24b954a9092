"""Shared fixtures: tmp workspaces and tiny image folders written with PIL."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.storage import Workspace


def default_sigint() -> None:
    """``preexec_fn`` for a child that a test stops with SIGINT: SIGINT back to its default, as
    under a terminal. A test run started in the background (``nohup cmd &``, some CI runners)
    inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler, so the child
    would never see the signal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(autouse=True)
def restore_main_module():
    """Streamlit's ``AppTest`` runs the app's script as ``__main__`` and leaves it in
    ``sys.modules``; a worker spawned afterwards (the ingest pool) imports ``__main__`` first, so it
    would run the app page, in bare mode, and die: ``tests/ingest/test_parallel_ingest.py`` failed
    after ``tests/app/test_explore_scale.py``. Put pytest's own back after every test."""
    main = sys.modules.get("__main__")
    yield
    if main is not None:
        sys.modules["__main__"] = main


def write_png(path: Path, value: int, size: tuple[int, int] = (6, 5)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((size[1], size[0]), value, dtype=np.uint8)
    pixels[0, 0] = 255 - value  # make content differ between values
    Image.fromarray(pixels, mode="L").save(path)
    return path


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace.open(tmp_path / "ws", create=True)


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """root/train/{cat,dog}/ and root/test/{cat,dog}/ with 3 images each, plus one corrupt file
    and one non-image file."""
    root = tmp_path / "images"
    for split in ("train", "test"):
        for k, label in enumerate(("cat", "dog")):
            for i in range(3):
                write_png(root / split / label / f"{label}{i}.png", 40 * k + 10 * i + (5 if split == "test" else 0))
    (root / "train" / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    (root / "train" / "dog" / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="session", autouse=True)
def _release_app_caches():
    """Drop the app's cached DuckDB handles before interpreter exit (AppTest runs pages in this
    process; DuckDB connections still alive at shutdown make nanobind print leak reports)."""
    yield
    import gc
    import sys

    if "streamlit" in sys.modules:
        import streamlit as st

        st.cache_resource.clear()
        st.cache_data.clear()
    gc.collect()


@pytest.fixture(scope="session")
def scored_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """36 images (circle / square / stripe, train and test), pixel embeddings, a PCA map and one
    fake score run (read-only by convention: use :func:`scored_ws`)."""
    from tests.app.app_testkit import build_scored_workspace

    return build_scored_workspace(tmp_path_factory.mktemp("scored-template"))


@pytest.fixture
def scored_ws(scored_template: Path, tmp_path: Path) -> Workspace:
    """A private copy of :func:`scored_template` to write to."""
    import shutil

    return Workspace.open(shutil.copytree(scored_template, tmp_path / "workspace"))
