"""Settings, as frozen dataclasses passed explicitly (never read from globals)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: The folder that holds workspaces when none is named: ``data/`` beside the package, or
#: ``$THRESHER_DATA`` when set (the Docker image points it at a volume).
DEFAULT_DATA_DIR = Path(os.environ.get("THRESHER_DATA", Path(__file__).resolve().parent.parent / "data"))

#: The workspace the demo writes and ``thresher app`` opens when no ``--workspace`` is given.
DEFAULT_WORKSPACE = DEFAULT_DATA_DIR / "workspaces" / "digits-demo"

#: ``thresher prune --label-issues``: what happens to the samples the score run flags (first:
#: the default). Here so that the CLI names them without importing the pruning code.
LABEL_ISSUE_CHOICES = ("exclude", "keep")


@dataclass(frozen=True)
class EmbedSettings:
    """How ``thresher embed`` encodes images.

    ``batch_size`` None: the embedder's choice (64 on the CPU; on CUDA the largest power of two up
    to 1024 that fits). ``num_workers`` None: the cores less one, at most 16. ``gpu_decode``: decode
    JPEG files on the GPU (nvJPEG); without CUDA a log line says decoding stays on the CPU.
    """

    model: str = "pixels"
    pretrained: str | None = None
    batch_size: int | None = 64
    num_workers: int | None = 0
    device: str | None = None
    gpu_decode: bool = False


@dataclass(frozen=True)
class ProjectionSettings:
    """How ``thresher project`` maps an embedding to 2-D.

    Above ``fit_sample`` points UMAP is fitted on a seeded random sample of that many points and
    the rest are placed with ``transform``: fitting is super-linear in N, transforming is not.
    50,000: at 50k points fit-on-sample loses map quality as the sample shrinks (trustworthiness
    0.983 full, 0.978 / 0.974 / 0.942 fitted on 20k / 10k / 5k; 2-D 10-NN label accuracy 0.978,
    0.960, 0.941, 0.862; ``bench/results/umap_scale.json``), so up to 50k points get the full fit
    and larger sets a 50k sample: at 1M x 32-d, 221 CPU seconds in all, peak RSS 953 MB
    (``bench/results/umap_scale.json``).
    """

    method: str = "umap"
    n_neighbors: int = 15
    min_dist: float = 0.1
    metric: str = "cosine"
    seed: int = 0
    fit_sample: int = 50_000
