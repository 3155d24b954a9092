"""The demo source: scikit-learn's digits (1,797 real 8x8 handwritten digits) as PNG files.

The images are written as an image folder (``train/<digit>/`` and ``test/<digit>/``, a stratified
70/30 split with seed 0) so the demo goes through the same folder reader as user data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

DEMO_SPLIT_SEED = 0
DEMO_TEST_FRACTION = 0.3


def write_digits(dest: str | Path) -> Path:
    """Write the digits as 8-bit grayscale PNGs under ``dest``; returns the folder to ingest.

    Pixel intensities 0..16 are scaled to 0..255. Existing files are left alone, so writing twice
    is harmless.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    dest = Path(dest)
    digits = load_digits()
    index = np.arange(len(digits.target))
    train_idx, _ = train_test_split(
        index, test_size=DEMO_TEST_FRACTION, stratify=digits.target, random_state=DEMO_SPLIT_SEED
    )
    train_set = set(train_idx.tolist())
    for i in index:
        split = "train" if i in train_set else "test"
        out = dest / split / str(digits.target[i]) / f"digit-{i:04d}.png"
        if out.exists():
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        pixels = np.clip(np.round(digits.images[i] * (255.0 / 16.0)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(out)
    return dest


def noisy_manifest(folder: str | Path, out: str | Path, *, fraction: float, seed: int = 0) -> tuple[Path, int]:
    """Write a manifest (path, label, split) of the digits under ``folder`` in which a seeded
    ``fraction`` of the train images carry a wrong label (uniform over the other nine digits),
    with a ``true_label`` column that ingest ignores; returns (its path, how many labels moved).

    Used by ``thresher demo --label-noise``: real images with known label errors, so that the
    review queue has something to find and its precision can be checked against the truth."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"--label-noise must be in (0, 1), got {fraction}")
    folder = Path(folder).resolve()
    paths = sorted(folder.glob("*/*/*.png"))
    rng = np.random.default_rng(seed)
    rows = []
    for path in paths:
        split, label = path.parent.parent.name, path.parent.name
        rows.append([str(path), label, split, label])
    train = [k for k, row in enumerate(rows) if row[2] == "train"]
    moved = rng.choice(train, size=round(fraction * len(train)), replace=False)
    for k in moved:
        true = int(rows[k][3])
        rows[k][1] = str(int(rng.choice([d for d in range(10) if d != true])))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = ["path,label,split,true_label"] + [",".join(row) for row in rows]
    out.write_text("\n".join(lines) + "\n")
    return out, len(moved)
