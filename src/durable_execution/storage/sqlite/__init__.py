"""SQLite storage: the embedded default (see :class:`SQLiteStorage`)."""

from durable_execution.storage.sqlite.storage import SQLiteStorage

__all__ = ["SQLiteStorage"]
