"""Pixel statistics of one image, for the image-quality checks (``backend.scoring.health``).

One place for the pixels-to-numbers step, imported by both sides: ingest computes the statistics
in the same pass that decodes and hashes each file (``backend.ingest.images``) and stores them
(the ``image_stats`` table); the score job's health stage reads them from there, and calls
:func:`read_image` itself only for samples ingest did not decode (imported embeddings, or
workspaces ingested before the table existed). Both paths run :func:`stats_of_image` on the
fully decoded image, so they give the same numbers. Pure NumPy (SciPy for one resampling);
Pillow only inside the functions that take or open an image; never torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

#: Images are shrunk to this longest side before the pixel statistics, so that the blur measure
#: compares images at one scale and a 4000 px photo costs what a 256 px one does.
QUALITY_SIDE = 256
#: ITU-R BT.601 luma weights of R, G, B.
LUMA = np.array([0.299, 0.587, 0.114])
#: The statistics of one image, in the order of :func:`pixel_stats`'s output.
STAT_NAMES = ("width", "height", "p99_luminance", "p05_luminance", "sharpness", "entropy_bits", "colour_spread")
#: The ones computed from pixels (the size is the file's, which ``samples`` already holds).
PIXEL_STAT_NAMES = STAT_NAMES[2:]
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


def pixel_stats(image: np.ndarray, *, width: int | None = None, height: int | None = None) -> np.ndarray:
    """Statistics of one image (H, W) or (H, W, C), values in [0, 1], as an array in the order
    of ``STAT_NAMES``. ``width`` / ``height``: the original size when ``image`` was shrunk.

    - luminance percentiles (dark, bright);
    - sharpness: variance of the 4-neighbour Laplacian over the variance of the grey image
      (Pech-Pacheco et al. 2000, "Diatom autofocusing in brightfield microscopy"), on the image
      resampled to a square of its shorter side (a stretched copy is not blurrier); dividing by
      the grey variance keeps a darkened, low-contrast but sharp image from reading as blurry;
    - Shannon entropy of the 256-bin grey histogram in bits (low information);
    - colour spread: the 95th percentile over pixels of max minus min channel (0 for grayscale;
      a percentile, not the mean, so that a colour object on a black background counts).
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3:
        channels = [img[:, :, c] for c in range(min(img.shape[2], 3))]  # per channel: fast, unlike axis=2
        grey = LUMA[0] * channels[0] + LUMA[1] * channels[1] + LUMA[2] * channels[2] if len(channels) == 3 \
            else sum(channels) / len(channels)
        spread_px = np.maximum.reduce(channels) - np.minimum.reduce(channels)
        rank = int(0.95 * (spread_px.size - 1))
        spread = float(np.partition(spread_px.ravel(), rank)[rank])
    else:
        grey, spread = img, 0.0
    h, w = grey.shape
    if h >= 3 and w >= 3:
        square = grey
        if h != w:  # a stretched image is not blurrier than its square original: compare square
            from scipy.ndimage import zoom

            side = min(h, w)
            square = zoom(grey, (side / h, side / w), order=1)
        lap = square[:-2, 1:-1] + square[2:, 1:-1] + square[1:-1, :-2] + square[1:-1, 2:] - 4 * square[1:-1, 1:-1]
        sharpness = float(lap.var() / (square.var() + 1e-6))
    else:
        sharpness = np.nan
    hist = np.bincount(np.clip((grey * 255).round().astype(np.int64), 0, 255).ravel(), minlength=256)
    p = hist[hist > 0] / hist.sum()
    entropy = float(-(p * np.log2(p)).sum())
    cumulative = np.cumsum(hist) / hist.sum()  # luminance percentiles to 1/255, from the histogram
    p05, p99 = np.searchsorted(cumulative, [0.05, 0.99]) / 255.0
    return np.array([width or w, height or h, p99, p05, sharpness, entropy, spread], dtype=np.float64)


def stats_of_image(img: Image.Image, *, side: int = QUALITY_SIDE) -> np.ndarray:
    """:func:`pixel_stats` of an opened Pillow image (its first frame), decoded in full, then
    shrunk in place to ``side`` (the original size is kept in the statistics). Ingest passes the
    image it has just decoded; :func:`read_image` opens the file: same steps, same numbers."""
    width, height = img.size
    img.load()  # in full: a JPEG draft (reduced-scale decode) would give other pixels than ingest's
    img.thumbnail((side, side))
    if img.mode == "F":
        pixels = np.asarray(img, dtype=np.float64)
    elif img.mode in _GREY_MODES:
        pixels = np.asarray(img.convert("F"), dtype=np.float64) / (65535.0 if img.mode.startswith("I") else 255.0)
    else:  # a palette goes through RGBA: Pillow warns when its transparency is dropped directly
        rgb = img.convert("RGBA").convert("RGB") if img.mode == "P" else img.convert("RGB")
        pixels = np.asarray(rgb, dtype=np.float64) / 255.0
    return pixel_stats(np.clip(pixels, 0.0, 1.0), width=width, height=height)


def read_image(path: str, *, side: int = QUALITY_SIDE) -> np.ndarray:
    """:func:`stats_of_image` of the image file at ``path``; OSError / ValueError when Pillow
    cannot read it."""
    from PIL import Image

    with Image.open(path) as img:
        return stats_of_image(img, side=side)
