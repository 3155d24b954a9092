"""Storage: the workspace's Lance tables (write side) and DuckDB queries over them (read side)."""

from backend.storage.errors import ConflictError, NotFoundError, StorageError
from backend.storage.workspace import Workspace

__all__ = ["ConflictError", "NotFoundError", "StorageError", "Workspace"]
