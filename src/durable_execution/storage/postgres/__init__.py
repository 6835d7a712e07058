"""PostgreSQL storage (needs the ``postgres`` extra): see :class:`PostgresStorage`.

:func:`configure_connection` gives the connections of a pool you pass the session settings of
the storage's own pool (pass it as the pool's ``configure``): see ``docs/postgres.md``.
"""

from durable_execution.storage.postgres.connections import configure_connection
from durable_execution.storage.postgres.storage import PostgresStorage

__all__ = ["PostgresStorage", "configure_connection"]
