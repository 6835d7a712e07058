"""Choosing a storage backend from a URL, importing its driver only when it is chosen.

- ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or ``sqlite:///:memory:``
- ``memory://``
- ``postgresql://user@host:port/db`` (or ``postgres://``): needs the ``postgres`` extra; the
  query parameters ``schema`` and ``table_prefix`` choose where the tables live

:func:`default_storage` reads the URL from the ``DURABLE_EXECUTION_STORAGE_URL`` environment
variable; without it, the default is the SQLite file ``durable_execution.db`` in the current
working directory.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from durable_execution.storage.protocol import DurableStorage

__all__ = ["DEFAULT_SQLITE_PATH", "STORAGE_URL_ENV", "default_storage", "storage_from_url"]

STORAGE_URL_ENV = "DURABLE_EXECUTION_STORAGE_URL"
DEFAULT_SQLITE_PATH = "durable_execution.db"


def storage_from_url(url: str) -> DurableStorage:
    """The storage a URL names; ``ValueError`` for an unknown scheme or a malformed URL."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise ValueError(f"Invalid storage URL {url!r}: expected scheme://...")
    if scheme == "sqlite":
        if not rest.startswith("/") or rest == "/":
            raise ValueError(
                f"Invalid SQLite URL {url!r}: use sqlite:///relative.db or sqlite:////abs.db"
            )
        from durable_execution.storage.sqlite import SQLiteStorage

        return SQLiteStorage(rest[1:])
    if scheme == "memory":
        from durable_execution.storage.memory import InMemoryStorage

        return InMemoryStorage()
    if scheme in ("postgresql", "postgres"):
        try:
            from durable_execution.storage.postgres import PostgresStorage
        except ImportError as exc:
            raise ValueError(
                "PostgreSQL storage needs the postgres extra: "
                "pip install 'durable-execution[postgres]'"
            ) from exc
        return PostgresStorage.from_url(url)
    raise ValueError(
        f"Unknown storage URL scheme {scheme!r} in {url!r}: use sqlite, memory or postgresql"
    )


def default_storage() -> DurableStorage:
    """The storage named by ``$DURABLE_EXECUTION_STORAGE_URL``, else ``./durable_execution.db``."""
    url = os.environ.get(STORAGE_URL_ENV, "").strip()
    if url:
        return storage_from_url(url)
    from durable_execution.storage.sqlite import SQLiteStorage

    return SQLiteStorage(DEFAULT_SQLITE_PATH)
