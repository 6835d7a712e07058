"""PostgreSQL storage (needs the ``postgres`` extra): see :class:`PostgresStorage`."""

from durable_execution.storage.postgres.storage import PostgresStorage

__all__ = ["PostgresStorage"]
