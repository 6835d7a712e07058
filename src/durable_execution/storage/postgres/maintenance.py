"""Keeping the executions table healthy when the server's autovacuum is off.

Every status change of an execution writes a new version of its row and leaves the old one
dead, with its entries in the indexes (the partial index of ``ready`` rows included, long after
the row left it). Autovacuum removes them; where it is off (some managed and hand-tuned
servers), nothing does, and a table that served a million executions held two million dead
rows and a 101 MB index of ``ready`` rows with no ready row in it: W1 lost a third of its
throughput (issue 18, docs/postgres.md "Large tables and autovacuum").

So, when the server's ``autovacuum`` setting is off:

- the storage logs one WARNING when it opens, saying what to do (turn it on, or let the
  executors' maintenance run);
- :meth:`PostgresMaintenance.maintain` (the :class:`~durable_execution.storage.abilities.
  Maintenance` ability; executors call it every ``maintenance_interval_ms``) runs ``VACUUM
  (ANALYZE)`` of the executions table and of the worker registry. One executor at a time (a
  session advisory lock taken with ``pg_try_advisory_lock``: the others skip their turn), at
  most once per interval whoever ran it (the table's last vacuum, from
  ``pg_stat_user_tables``), on a connection of its own outside the pool (``VACUUM`` cannot
  run in a transaction block, and the hot statements keep their connections), throttled as
  autovacuum is (the server's ``autovacuum_vacuum_cost_delay`` and ``_limit``). Each pass only
  reads the pages changed since the last one (the visibility map skips the others), plus one
  pass over the indexes when there are enough dead rows to clean.

When autovacuum is on, :meth:`maintain` does nothing: the per-table settings of migration 8
make autovacuum visit the executions table after 1% of it changed, instead of 20%.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Any

from psycopg import AsyncConnection, sql
from psycopg.errors import LockNotAvailable
from psycopg.rows import tuple_row

from durable_execution.checks import MAX_DURATION_MS, check_int
from durable_execution.storage.postgres.schema import Names

if TYPE_CHECKING:
    from durable_execution.storage.postgres.runtime import Runtime

__all__ = ["PostgresMaintenance", "autovacuum_is_on", "maintenance_lock_key", "warn_if_off"]

_log = logging.getLogger("durable_execution.storage.postgres")

_THROTTLE = (
    "SELECT set_config('vacuum_cost_delay', current_setting('autovacuum_vacuum_cost_delay'), "
    "false), set_config('vacuum_cost_limit', CASE current_setting('autovacuum_vacuum_cost_limit')"
    " WHEN '-1' THEN current_setting('vacuum_cost_limit') "
    "ELSE current_setting('autovacuum_vacuum_cost_limit') END, false), "
    "set_config('lock_timeout', '1s', false)"
)


def maintenance_lock_key(names: Names) -> int:
    """The advisory lock key held while one executor maintains the installation's tables."""
    data = f"durable_execution\0maintenance\0{names.schema}\0{names.prefix}".encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big", signed=True)


async def _one(conn: AsyncConnection[Any], query: str, params: Any = None) -> Any:
    cur = conn.cursor(row_factory=tuple_row)
    await cur.execute(query, params, prepare=False)
    row = await cur.fetchone()
    return None if row is None else row[0]


async def autovacuum_is_on(conn: AsyncConnection[Any]) -> bool:
    """Whether the server's autovacuum launcher runs (``autovacuum`` and ``track_counts``,
    without which it cannot tell what to vacuum)."""
    return bool(
        await _one(
            conn,
            "SELECT current_setting('autovacuum')::boolean "
            "AND current_setting('track_counts')::boolean",
        )
    )


async def warn_if_off(conn: AsyncConnection[Any], names: Names) -> bool:
    """Log the WARNING about autovacuum being off, if it is; whether it is off."""
    if await autovacuum_is_on(conn):
        return False
    _log.warning(
        "PostgreSQL autovacuum is off on this server: the table %s.%s leaves a dead row "
        "version behind at every status change, and would slow down as executions pile up. "
        "The executors vacuum it themselves (one at a time, every maintenance_interval_ms, "
        "60 s by default; keep it on); better, turn autovacuum on (ALTER SYSTEM SET "
        "autovacuum = on; SELECT pg_reload_conf()). See docs/postgres.md, 'Large tables and "
        "autovacuum'.",
        names.schema,
        names.table_name,
    )
    return True


async def vacuum_if_due(conn: AsyncConnection[Any], names: Names, min_interval_ms: int) -> bool:
    """One pass on ``conn`` (autocommit, ours alone): see the module's docstring."""
    if await autovacuum_is_on(conn):
        return False
    key = maintenance_lock_key(names)
    if not await _one(conn, "SELECT pg_try_advisory_lock(%s)", [key]):
        return False  # another executor is at it
    try:
        age_ms = await _one(
            conn,
            "SELECT (extract(epoch FROM statement_timestamp() - "
            "greatest(last_vacuum, last_autovacuum)) * 1000)::bigint "
            "FROM pg_stat_all_tables WHERE relid = to_regclass(%s)",
            [f'"{names.schema}"."{names.table_name}"'],
        )
        if age_ms is not None and age_ms < min_interval_ms:
            return False
        await conn.execute(_THROTTLE, prepare=False)
        try:
            for table in (names.table, names.workers_table):
                await conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(table), prepare=False)
        except LockNotAvailable:  # an operator's VACUUM, or DDL: next time
            return False
        return True
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", [key], prepare=False)


class PostgresMaintenance:
    """The :class:`~durable_execution.storage.abilities.Maintenance` ability."""

    _names: Names
    _runtime: Runtime

    async def maintain(self, *, min_interval_ms: int) -> bool:
        """Vacuum the executions table if the server's autovacuum is off and nobody did for
        ``min_interval_ms``; see :mod:`durable_execution.storage.postgres.maintenance`."""
        check_int("min_interval_ms", min_interval_ms, minimum=0, maximum=MAX_DURATION_MS)

        return await self._runtime.run_dedicated(
            "vacuum the executions table",
            lambda conn: vacuum_if_due(conn, self._names, min_interval_ms),
        )
