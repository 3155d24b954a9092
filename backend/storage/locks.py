"""Workspace file locks: one writer at a time for a check-then-commit, across processes.

Lance commits are atomic, but a writer that first *checks* something (is this subset name free?
what is the next ``seq``?) and then commits can race another writer doing the same: both pass the
check, both commit. Such writers hold :func:`workspace_lock` around the check and the commit.
Readers never take a lock (Lance readers see whole commits only).

The lock is ``fcntl.flock`` on ``W/locks/<name>.lock``, taken on a new open file description per
call, so two threads of one process wait for each other too; the kernel releases it when the
process dies, so a killed writer never leaves a stale lock behind. ``flock`` is local to one
machine (and to NFS clients with lock support): writers on other hosts of a shared folder are
not serialised by it.
"""

from __future__ import annotations

import contextlib
import fcntl
import re
from collections.abc import Iterator

from backend.storage.workspace import Workspace

_LOCK_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")


@contextlib.contextmanager
def workspace_lock(ws: Workspace, name: str) -> Iterator[None]:
    """Hold the exclusive lock ``W/locks/<name>.lock`` for the body of the ``with``."""
    if not _LOCK_NAME.match(name):
        raise ValueError(f"lock name {name!r}: use 1-40 lowercase letters, digits, '_' or '-'")
    ws.locks_dir.mkdir(parents=True, exist_ok=True)
    with open(ws.locks_dir / f"{name}.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
