"""Choosing a storage backend from a URL, importing its driver only when it is chosen.

- ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or ``sqlite:///:memory:``
- ``memory://``
- ``postgresql://user@host:port/db`` (or ``postgres://``): needs the ``postgres`` extra; the
  query parameters ``schema`` and ``table_prefix`` choose where the tables live
- any other scheme: the storage factory an installed distribution registered under that name
  in the entry-point group ``durable_execution.storages`` (a callable taking the URL and
  returning a storage), for example in its ``pyproject.toml``::

      [project.entry-points."durable_execution.storages"]
      myscheme = "mypkg.storage:from_url"

  The built-in schemes above cannot be registered over; the entry points are read only when
  a URL names another scheme.

:func:`default_storage` reads the URL from the ``DURABLE_EXECUTION_STORAGE_URL`` environment
variable; without it, the default is the SQLite file ``durable_execution.db`` in the current
working directory.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from durable_execution.storage.protocol import DurableStorage

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

__all__ = [
    "DEFAULT_SQLITE_PATH",
    "STORAGES_ENTRY_POINT_GROUP",
    "STORAGE_URL_ENV",
    "default_storage",
    "storage_from_url",
]

STORAGE_URL_ENV = "DURABLE_EXECUTION_STORAGE_URL"
DEFAULT_SQLITE_PATH = "durable_execution.db"
STORAGES_ENTRY_POINT_GROUP = "durable_execution.storages"


def storage_from_url(url: str) -> DurableStorage:
    """The storage a URL names (spaces around it are ignored); ``ValueError`` for an unknown
    scheme or a malformed URL.

    A scheme registered by a distribution (see the module's docstring) gets the storage its
    factory returns; ``TypeError`` when that is not a storage.
    """
    url = url.strip()  # pasted from a file or a shell, with a newline or spaces around
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
                "pip install -e '/path/to/durable_execution[postgres]' (from a checkout)"
            ) from exc
        return PostgresStorage.from_url(url)
    return _registered_storage(scheme, url)


def _registered_storage(scheme: str, url: str) -> DurableStorage:
    """The storage made from ``url`` by the factory registered for ``scheme``."""
    from importlib.metadata import entry_points

    found = {
        entry_point.value: entry_point
        for entry_point in entry_points(group=STORAGES_ENTRY_POINT_GROUP)
        if entry_point.name.lower() == scheme
    }
    if not found:
        raise ValueError(
            f"Unknown storage URL scheme {scheme!r} in {url!r}: use sqlite, memory or "
            f"postgresql, or install a package that registers {scheme!r} in the entry-point "
            f"group {STORAGES_ENTRY_POINT_GROUP!r}"
        )
    if len(found) > 1:
        raise ValueError(
            f"The storage URL scheme {scheme!r} is registered more than once, as "
            + " and ".join(_describe(entry_point) for entry_point in found.values())
        )
    (entry_point,) = found.values()
    where = f"the storage factory {_describe(entry_point)} registered for {scheme!r}"
    try:
        factory = entry_point.load()
        storage = factory(url)
    except Exception as exc:
        exc.add_note(f"(in {where})")
        raise
    if isinstance(storage, type) or not isinstance(storage, DurableStorage):
        raise TypeError(f"{where} returned {storage!r}, which is not a DurableStorage")
    return storage


def _describe(entry_point: EntryPoint) -> str:
    """``module:attribute (from distribution)``, to name an entry point in messages."""
    dist = entry_point.dist.name if entry_point.dist is not None else "an unknown distribution"
    return f"{entry_point.value!r} (from {dist})"


def default_storage() -> DurableStorage:
    """The storage named by ``$DURABLE_EXECUTION_STORAGE_URL``, else ``./durable_execution.db``."""
    url = os.environ.get(STORAGE_URL_ENV, "").strip()
    if url:
        return storage_from_url(url)
    from durable_execution.storage.sqlite import SQLiteStorage

    return SQLiteStorage(DEFAULT_SQLITE_PATH)
