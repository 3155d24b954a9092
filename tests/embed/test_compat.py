"""The torchvision shim: open_clip imports beside a CPU torch, and nothing happens when not needed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from backend.embed import compat

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_fresh(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a new interpreter (the shim's effect is per process)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"},
    )


def test_shim_makes_open_clip_importable_even_after_a_failed_import():
    result = run_fresh(
        """
        import torch
        try:
            import torchvision
            failed = False
        except RuntimeError as exc:
            failed = "torchvision::" in str(exc)
        from backend.embed.compat import ensure_torchvision_importable
        declared = ensure_torchvision_importable()
        assert declared == failed, (declared, failed)
        assert ensure_torchvision_importable() == declared  # idempotent
        import open_clip, torchvision, timm  # noqa: F401
        import torchvision.transforms
        print("declared" if declared else "not needed", torchvision.__version__)
        """
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_shim_does_nothing_when_the_extension_loads():
    result = run_fresh(
        """
        import torch
        torch.ops.load_library = lambda path: None  # pretend torchvision's _C loads fine
        from backend.embed import compat
        assert compat.ensure_torchvision_importable() is False
        assert not compat._has_op(torch, "nms")  # nothing was declared
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"


def test_import_open_clip_returns_the_module():
    open_clip = compat.import_open_clip()
    assert callable(open_clip.create_model_and_transforms)
    assert compat.ensure_torchvision_importable() in (True, False)
