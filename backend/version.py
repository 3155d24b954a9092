"""The code version stamped on every run, so results can be traced to the code that made them."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

__version__ = "0.1.0"


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """``0.1.0`` plus the git commit (``+g1a2b3c4``, ``.dirty`` when modified) when run from a checkout."""
    repo = Path(__file__).resolve().parent.parent
    if not (repo / ".git").exists():
        return __version__
    try:
        sha = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+g{sha}" + (".dirty" if dirty else "")
