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
    """How ``thresher embed`` encodes images."""

    model: str = "pixels"
    pretrained: str | None = None
    batch_size: int = 64
    num_workers: int = 0
    device: str | None = None


@dataclass(frozen=True)
class ProjectionSettings:
    """How ``thresher project`` maps an embedding to 2-D.

    Above ``fit_sample`` points UMAP is fitted on a seeded random sample of that many points and
    the rest are placed with ``transform``: fitting is super-linear in N, transforming is not.
    """

    method: str = "umap"
    n_neighbors: int = 15
    min_dist: float = 0.1
    metric: str = "cosine"
    seed: int = 0
    fit_sample: int = 20_000
