"""Where an export may be written: the one check every writer makes before it writes anything.

An export replaces whatever is at its path, so a path naming the wrong thing loses data: a
workspace's own tables, a file nobody meant to replace, whatever a symbolic link points at, a
device. :func:`check_output` refuses each of these with a message that says what to do; with
``inside`` (the app, whose user types a name into a page served from someone else's machine) it
also refuses any path that leaves that folder. :func:`replace_atomically` then writes through a
temporary file that is never a link, renamed into place.

The checks run when the export starts; a link made in the same folder by another program between
the check and the rename is not caught (the rename replaces the link itself, never its target).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from backend.storage.errors import ConflictError, StorageError
from backend.storage.workspace import MARKER, Workspace

#: The app's export folder when set (``thresher app --export-dir DIR`` sets it); else ``W/exports``.
EXPORT_DIR_ENV = "THRESHER_EXPORT_DIR"
#: A workspace's folders that only Thresher writes (its tables, its locks, its jobs' records).
OWN_FOLDERS = ("lance", "locks", "jobs")


class OutputExistsError(ConflictError):
    """The export's path holds a file already; it is replaced only when asked (``--overwrite``)."""

    def __init__(self, path: Path):
        super().__init__(f"{path} exists; pass --overwrite to replace it, or pick another --out")
        self.path = path


def export_folder(ws: Workspace) -> Path:
    """The folder the app writes exports into: ``$THRESHER_EXPORT_DIR``, else ``W/exports``."""
    configured = os.environ.get(EXPORT_DIR_ENV)
    return Path(configured).expanduser().resolve() if configured else ws.exports_dir


def check_output(out: str | os.PathLike, *, overwrite: bool, inside: str | os.PathLike | None = None,
                 folder: bool = False, example: str | None = None) -> Path:
    """The absolute path an export to ``out`` may write, or :class:`StorageError` saying why not.

    Refused: a path in a workspace's own folders (:data:`OWN_FOLDERS`, ``workspace.json``; of
    any workspace, found by its marker above the path); a symbolic link; a device, FIFO or
    socket; a path whose folder does not exist; an existing file unless ``overwrite``
    (:class:`OutputExistsError`). ``folder=True`` (an image-folder export) accepts a new path or
    an existing folder (whether it is empty is the writer's check). ``example``: a file name the
    error suggests when ``out`` is a folder.

    ``inside``: ``out`` is a name (or a relative path, or an absolute one within the folder) in
    that folder; ``..``, a path outside it and a folder that leads out through a symbolic link
    are refused. The folder and the name's subfolders are created on demand. Without it a
    relative ``out`` is taken from the current folder.
    """
    path = _in_folder(out, Path(inside)) if inside is not None else _absolute(out)
    if path.name in ("", ".", ".."):
        raise StorageError(f"{out} names no file: give a file name")
    if not path.parent.is_dir():
        raise StorageError(f"folder {path.parent} does not exist; create it first or pick another --out")
    _refuse_workspace_internals(path)
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return path
    if stat.S_ISLNK(mode):
        raise StorageError(f"{path} is a symbolic link (to {os.readlink(path)}); an export never writes through "
                           "a link: remove the link or pick another name")
    if stat.S_ISDIR(mode):
        if folder:
            return path
        raise StorageError(f"--out {path} is a folder; give a file name inside it"
                           + (f", such as {path / example}" if example else ""))
    if not stat.S_ISREG(mode):
        raise StorageError(f"{path} is a {_kind(mode)}, not a file; an export never replaces one: pick another name")
    if folder:
        raise StorageError(f"{path} is a file; an image-folder export makes a new folder: pick another name")
    if not overwrite:
        raise OutputExistsError(path)
    return path


def replace_atomically(path: Path, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path`` (created anew, never through a link),
    then rename it onto ``path``: a failure leaves no half file, and ``path`` is replaced whole."""
    tmp = path.with_name(f".{path.name}.partial")
    tmp.unlink(missing_ok=True)  # a leftover of a killed export, or a link someone put there
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _absolute(out: str | os.PathLike) -> Path:
    """``out`` made absolute with its folders resolved but not its last part (a link stays a link)."""
    given = Path(out).expanduser().absolute()
    return given.parent.resolve() / given.name


def _in_folder(out: str | os.PathLike, root: Path) -> Path:
    """``out`` as a path in the export folder ``root`` (the rules: :func:`check_output`)."""
    text = str(out).strip()
    root.mkdir(parents=True, exist_ok=True)
    real_root = root.resolve()
    if not text:
        raise StorageError(f"give a file name to write in the export folder {real_root}")
    name = Path(text)
    if ".." in name.parts:
        raise StorageError(f"{text!r} climbs out with '..': give a file name in the export folder {real_root}")
    if name.is_absolute():
        for base in (root.absolute(), real_root):
            if name.is_relative_to(base) and name != base:
                name = name.relative_to(base)
                break
        else:
            raise StorageError(f"{text} is outside the export folder {real_root}: give a file name, or a path "
                               "inside that folder (the app writes nowhere else; `thresher app --export-dir DIR` "
                               "chooses the folder)")
    current = real_root
    for part in name.parts[:-1]:
        current = current / part
        if current.is_symlink() and not current.resolve().is_relative_to(real_root):
            raise StorageError(f"{current} is a symbolic link out of the export folder (to {current.resolve()}); "
                               "give a path that stays inside it")
        current.mkdir(exist_ok=True)
        if not current.is_dir():
            raise StorageError(f"{current} is a file, not a folder: give another path")
    path = current.resolve() / name.parts[-1]
    if not path.parent.is_relative_to(real_root):
        raise StorageError(f"{text} leads out of the export folder {real_root}: give a path inside it")
    return path


def _refuse_workspace_internals(path: Path) -> None:
    """Refuse ``path`` (folders resolved) when it is a workspace's own file or in its own folders."""
    for ancestor in path.parents:
        if not (ancestor / MARKER).is_file():
            continue
        inner = path.relative_to(ancestor).parts
        if inner[0] in OWN_FOLDERS or inner == (MARKER,):
            raise StorageError(f"{path} is inside workspace {ancestor}'s own {inner[0]} (only Thresher writes "
                               f"there; an export would corrupt the workspace): write it elsewhere, such as "
                               f"{ancestor / 'exports'}")


def _kind(mode: int) -> str:
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISFIFO(mode):
        return "FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"
