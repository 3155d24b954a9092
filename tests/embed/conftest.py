"""Fixtures for the embed tests: tiny image files written with PIL, one shared random CLIP model.

The CLIP tests use ViT-S-32-alt, the cheapest model open_clip lists (43 M parameters, 256-d;
measured against ViT-S-32, ViT-M-32, RN50, convnext_tiny, MobileCLIP2-S0), with random weights:
no download is ever needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHEAP_CLIP_MODEL = "ViT-S-32-alt"


def write_images(folder: Path, count: int, *, seed: int = 0) -> list[str]:
    """``count`` small random RGB PNGs of slightly different sizes; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        pixels = rng.integers(0, 256, size=(12 + i, 9 + 2 * i, 3), dtype=np.uint8)
        path = folder / f"image{i}.png"
        Image.fromarray(pixels, mode="RGB").save(path)
        paths.append(str(path))
    return paths


def write_corrupt(path: Path) -> str:
    """A file with a PNG name and signature but no image in it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    return str(path)


@pytest.fixture
def mixed_paths(tmp_path: Path) -> list[str]:
    """Four good images with a corrupt file at position 1 and a missing one at position 4."""
    good = write_images(tmp_path / "images", 4)
    corrupt = write_corrupt(tmp_path / "images" / "broken.png")
    missing = str(tmp_path / "images" / "gone.png")
    return [good[0], corrupt, good[1], good[2], missing, good[3]]


@pytest.fixture(scope="session")
def low_torch_threads():
    """One intra-op thread: the test box is small and shared."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def clip_embedder(low_torch_threads):
    """A random-weights ViT-S-32-alt on the CPU, built once per test module."""
    from backend.embed import get_embedder

    return get_embedder(CHEAP_CLIP_MODEL, None, device="cpu")
