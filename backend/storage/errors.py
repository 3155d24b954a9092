"""Errors the storage layer raises; each message says what to do next."""


class StorageError(RuntimeError):
    """A workspace problem the user can act on (missing workspace, unknown table, bad name)."""


class NotFoundError(StorageError):
    """A named thing (table, run, subset) does not exist in the workspace."""


class ConflictError(StorageError):
    """Writing would overwrite something the user made; pass ``overwrite=True`` to replace it."""
