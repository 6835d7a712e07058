"""SQL text shared by the PostgreSQL statements (``queries.py``, ``lease_queries.py``)."""

from __future__ import annotations

from collections.abc import Sequence

from durable_execution.storage.postgres.rows import COLUMNS

__all__ = ["COLS", "NOW", "cols", "exists", "notify_tail"]

COLS = ", ".join(COLUMNS)
"""Every column of the executions table, in record order."""

NOW = "%(now)s::bigint"
"""The executor's clock in milliseconds (the database clock is never used)."""


def cols(alias: str) -> str:
    """Every column, in record order, of the row ``alias``."""
    return ", ".join(f"{alias}.{c}" for c in COLUMNS)


def exists(source: str, condition: str = "true") -> str:
    """Whether ``source`` has a row where ``condition`` holds."""
    return f"EXISTS (SELECT 1 FROM {source} WHERE {condition})"


def notify_tail(width: int, kinds: Sequence[tuple[str, str]]) -> str:
    """A ``UNION ALL`` branch calling ``pg_notify(channel, kind)`` once per kind whose
    condition holds. It yields a row of ``width`` NULLs per notification; callers skip them.
    """
    nulls = ", ".join(["NULL"] * width)
    wanted = " UNION ALL ".join(f"SELECT '{kind}' AS kind WHERE {when}" for kind, when in kinds)
    return (
        f"UNION ALL SELECT {nulls} FROM "
        f"(SELECT pg_notify(%(channel)s, kind) FROM ({wanted}) AS kinds WHERE %(notify)s) AS sent"
    )
