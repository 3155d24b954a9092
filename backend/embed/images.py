"""Decoding image files with PIL for the embedders, with a clear reason when a file is bad.

``torchvision.io`` is not used here: its decoders need torchvision's C extension, which may not
load (see :mod:`backend.embed.compat`); only the optional GPU decoding uses it
(:mod:`backend.embed.gpu_decode`).
"""

from __future__ import annotations

import os

from PIL import Image

# What PIL raises for a file that exists but is not a usable image: UnidentifiedImageError and
# truncated data are OSErrors; some plugins raise SyntaxError, ValueError or EOFError.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


class ImageDecodeError(ValueError):
    """The file cannot be used as an image; the message says why."""


def load_rgb(path: str | os.PathLike) -> Image.Image:
    """Open ``path``, decode it fully and return it as an RGB image.

    Parameters
    ----------
    path : str or path-like
        An image file in any format PIL reads.

    Returns
    -------
    PIL.Image.Image
        Mode ``"RGB"``, fully loaded (the file is closed).

    Raises
    ------
    ImageDecodeError
        ``"missing file: ..."``, ``"unreadable file: ..."`` or ``"corrupt image: ..."``.
    """
    try:
        with Image.open(path) as img:
            img.load()
            return img.convert("RGB")
    except FileNotFoundError as exc:
        raise ImageDecodeError(f"missing file: no such file {os.fspath(path)!r}") from exc
    except (PermissionError, IsADirectoryError) as exc:
        raise ImageDecodeError(f"unreadable file: {exc.strerror or exc}") from exc
    except Image.UnidentifiedImageError as exc:
        raise ImageDecodeError("corrupt image: not a format PIL can read") from exc
    except _DECODE_ERRORS as exc:
        raise ImageDecodeError(f"corrupt image: {exc}") from exc
