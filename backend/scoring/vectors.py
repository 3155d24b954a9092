"""Row-wise vector helpers shared by the scorers and the jobs: row blocks and L2 normalisation.

Both work in blocks of ``BLOCK_ROWS`` rows, so an (N, D) temporary never stands beside the
result (1M x 512 float32: 32 MB per block instead of 2 GB).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

EPS = 1e-12
BLOCK_ROWS = 65_536


def row_blocks(n: int, size: int | None = None) -> Iterator[slice]:
    """Slices covering range(n) in blocks of ``size`` (default BLOCK_ROWS) rows."""
    size = size or BLOCK_ROWS
    for lo in range(0, n, size):
        yield slice(lo, min(lo + size, n))


def unit_rows(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Write the rows of ``x`` scaled to unit length into ``out`` (zero rows stay zero; ``out``
    may be ``x`` itself) and return the norms (N,) in ``x``'s precision."""
    norms = np.empty(x.shape[0], dtype=np.result_type(x.dtype, np.float32))
    for rows in row_blocks(x.shape[0]):  # the same per-row arithmetic as one pass
        block = x[rows]
        norms[rows] = np.linalg.norm(block, axis=1)
        np.divide(block, np.maximum(norms[rows], EPS)[:, None], out=out[rows], casting="unsafe")
    return norms


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32."""
    x = np.asarray(x)
    out = np.empty(x.shape, dtype=np.float32)
    unit_rows(x, out)
    return out
