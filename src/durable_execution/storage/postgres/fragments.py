"""SQL text shared by the PostgreSQL statements (``queries.py``, ``lease_queries.py``)."""

from __future__ import annotations

from collections.abc import Sequence

from durable_execution.storage.postgres.rows import COLUMNS

__all__ = ["CLOCKS", "COLS", "NOW", "SHIFT", "cols", "exists", "notify_tail"]

COLS = ", ".join(COLUMNS)
"""Every column of the executions table, in record order."""

NOW = "{now}"
"""The current time in milliseconds: a placeholder filled when the statements are rendered
(see :data:`CLOCKS`), so that one text serves both clocks."""

SHIFT = "{shift}"
"""Follows a time the executor computed from its own clock (a start time: ``now`` plus a delay),
to bring it onto the clock of :data:`NOW` (filled at rendering, see :data:`CLOCKS`)."""

CLOCKS: dict[str, tuple[str, str]] = {
    # Times come from each executor's clock, as passed in ``now_ms`` (deterministic: the
    # conformance suite uses it).
    "executor": ("%(now)s::bigint", ""),
    # Times come from the server's clock, the same for every executor whatever their clocks'
    # skew; a time an executor computed from its own clock keeps its distance to its ``now``.
    "database": (
        "(floor(extract(epoch from statement_timestamp()) * 1000))::bigint",
        " + ((floor(extract(epoch from statement_timestamp()) * 1000))::bigint - %(now)s::bigint)",
    ),
}
"""Per clock of :class:`~durable_execution.storage.postgres.PostgresStorage`, the SQL of
:data:`NOW` and :data:`SHIFT`."""


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
