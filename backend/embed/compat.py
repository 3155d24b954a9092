"""One environment trap, handled in one place: a torchvision whose C extension cannot load.

The PyPI ``torchvision==0.28.0`` wheel is a CUDA build. Installed beside the CPU build of
``torch==2.13.0`` its C extension (``torchvision/_C.so``) fails to load, and torchvision
silently carries on without its custom operators -- until ``torchvision/_meta_registrations.py``
calls ``torch.library.register_fake("torchvision::nms")`` (and ``"torchvision::qnms"``) without
checking whether the extension is there. That raises::

    RuntimeError: operator torchvision::nms does not exist

so ``import torchvision`` -- and with it ``import open_clip`` and ``import timm`` -- fails.
(The other meta and autograd registrations in torchvision are guarded by ``_has_ops()`` and are
skipped.)

:func:`ensure_torchvision_importable` runs before open_clip is imported. Only when the extension
really cannot be loaded does it declare the schemas of the operators that the import registers
fake kernels for, through ``torch.library``. The operators stay without a CPU kernel: calling
``torchvision.ops.nms`` still fails (with torch's "could not run ... with arguments from the 'CPU'
backend"), but nothing Thresher uses needs those detection ops; the image transforms are pure
Python. When the extension loads normally the function does nothing. On the CPU images are
decoded with PIL, never ``torchvision.io`` (which needs the same extension); its CUDA JPEG decoder
is used only with ``gpu_decode`` (:mod:`backend.embed.gpu_decode`), after a test decode shows it
works.

Nothing outside ``backend.embed`` needs to know about this module.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
import sys
import threading
from pathlib import Path

log = logging.getLogger(__name__)

# Operators that torchvision registers fake kernels for at import time without first checking
# that its extension loaded (torchvision 0.28, ``_meta_registrations.py``), with the schemas that
# the C++ extension would have declared (``torchvision/csrc/ops/nms.cpp``).
_UNGUARDED_OP_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}

_lock = threading.Lock()
_library = None  # keeps the torch.library.Library (and so the schemas) alive for the process
_state: bool | None = None  # None: not checked yet; True: schemas declared; False: nothing to do


def ensure_torchvision_importable() -> bool:
    """Make ``import torchvision`` (and so ``import open_clip``) work beside a CPU torch.

    Call before importing open_clip, timm or torchvision. Idempotent and thread-safe.

    Returns
    -------
    bool
        True when the torchvision extension could not be loaded and the missing operator schemas
        were declared here; False when nothing was needed (the extension loads, torchvision is
        already imported or is not installed).

    Raises
    ------
    ImportError
        When torch itself is not installed.
    """
    global _state
    if _state is not None:
        return _state
    with _lock:
        if _state is None:
            _state = _declare_schemas_if_needed()
            if _state:
                log.info(
                    "torchvision's C extension cannot load beside this torch build; declared the "
                    "schemas of %s so that torchvision imports (its detection ops stay unavailable)",
                    ", ".join(f"torchvision::{name}" for name in _UNGUARDED_OP_SCHEMAS),
                )
    return _state


def _declare_schemas_if_needed() -> bool:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is a hard dependency of embed
        raise ImportError(
            "backend.embed needs torch; install it with `pip install torch torchvision "
            "open-clip-torch -c constraints.txt`"
        ) from exc
    if "torchvision" in sys.modules:
        return False  # already imported, so it worked (or the caller is past helping)
    extension = _torchvision_extension_path()
    if extension is None:
        return False  # torchvision not installed: open_clip's own import error will say so
    if all(_has_op(torch, name) for name in _UNGUARDED_OP_SCHEMAS):
        return False
    try:
        torch.ops.load_library(str(extension))
    except (OSError, ImportError, RuntimeError) as exc:
        log.debug("torchvision extension %s does not load: %s", extension, exc)
    else:
        return False  # the extension loads; torchvision will load it again (a no-op) itself
    global _library
    _library = torch.library.Library("torchvision", "FRAGMENT")
    for name, schema in _UNGUARDED_OP_SCHEMAS.items():
        if not _has_op(torch, name):
            _library.define(schema)
    return True


def _torchvision_extension_path() -> Path | None:
    """Where torchvision's ``_C`` extension lives, found the way torchvision itself finds it."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            candidate = Path(location) / f"_C{suffix}"
            if candidate.is_file():
                return candidate
    return Path(next(iter(spec.submodule_search_locations))) / "_C.so"


def _has_op(torch_module, name: str) -> bool:
    try:
        torch_module._C._dispatch_find_schema_or_throw(f"torchvision::{name}", "")
    except RuntimeError:
        return False
    return True


def import_open_clip():
    """Import and return the ``open_clip`` module, after :func:`ensure_torchvision_importable`.

    Raises
    ------
    ImportError
        When open_clip (or torch / torchvision) is not installed, saying what to install.
    """
    ensure_torchvision_importable()
    try:
        import open_clip
    except ImportError as exc:
        raise ImportError(
            "CLIP models need open_clip: install it with `pip install open-clip-torch "
            "-c constraints.txt` (or `pip install -e .` in the Thresher checkout); the 'pixels' "
            f"embedder works without it ({exc})"
        ) from exc
    return open_clip
