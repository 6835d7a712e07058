"""The PostgreSQL storage's operations on whole trees: an operator's retry (the
:class:`~durable_execution.storage.abilities.TreeRetry` ability) and purging (the
:class:`~durable_execution.storage.abilities.ExecutionPurge` ability), mixed into
:class:`~durable_execution.storage.postgres.PostgresStorage`.

A retry is one transaction: it locks the root (``FOR UPDATE``: a concurrent retry, cancel or
purge of the tree waits for it, then sees what it did), loads the tree with a recursive query
over the children index, applies :mod:`durable_execution.storage.retry_rules` in Python and
writes back the changed rows, each fenced by its lease token; the NOTIFY goes with the commit.

A purge batch is one short transaction that needs no index of its own (so it costs the write
path nothing): it walks the primary key from where the previous batch stopped (ids are
time-ordered, so the oldest come first and the walk ends at
:func:`~durable_execution.ids.execution_id_floor`), locks the qualifying roots with
``FOR UPDATE SKIP LOCKED`` (a root a retry or a cancel holds is skipped, never waited for),
checks their trees and deletes the whole ones. Only the rows it deletes are locked.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.errors import UniqueViolation
from psycopg.rows import tuple_row

from durable_execution.errors import (
    DurableExecutionNotFoundError,
)
from durable_execution.ids import execution_id_floor
from durable_execution.storage.postgres.fragments import CLOCKS, COLS
from durable_execution.storage.postgres.rows import error_json, record_from_row
from durable_execution.storage.postgres.runtime import Runtime
from durable_execution.storage.postgres.schema import Names
from durable_execution.storage.records import (
    ExecutionRecord,
    PurgeBatch,
    WorkKind,
    roots_to_purge,
)
from durable_execution.storage.retry_rules import check_retryable, reopen_tree, unique_id_taken
from durable_execution.storage.sql_rules import final_sql
from durable_execution.storage.transitions import record_work

__all__ = ["PostgresTrees"]

_LOCK_ROOT = "SELECT execution_id FROM {t} WHERE execution_id = %(id)s::text FOR UPDATE"
_TREE = (
    'WITH RECURSIVE tree(id) AS (SELECT %(id)s::text COLLATE "C" UNION ALL SELECT e.execution_id '
    "FROM {t} AS e JOIN tree ON e.parent_execution_id = tree.id) "
    f"SELECT {COLS}, ARRAY(SELECT k.execution_id FROM {{t}} AS k "
    "WHERE k.parent_execution_id = x.execution_id AND NOT k.is_finalize "
    "ORDER BY k.index_in_parent) FROM {t} AS x WHERE x.execution_id IN (SELECT id FROM tree)"
)
# What a retry may change (retry_rules): the row's state, never its identity or links.
_RETRY_COLUMNS = (
    ("status", "text"),
    ("output", "text"),
    ("error", "text"),
    ("retry_attempts", "integer"),
    ("updated_at", "bigint"),
    ("start_at", "bigint"),
    ("expires_at", "bigint"),
    ("finished_at", "bigint"),
    ("unfinished_children", "integer"),
    ("failed_children", "integer"),
    ("close_state", "text"),
    ("needs_promise_cancellation", "boolean"),
    ("executor_id", "text"),
    ("lease_token", "bigint"),
    ("timeout_at", "bigint"),
    ("lease_expiries", "integer"),
)
_SAVE = (
    "UPDATE {t} SET "
    + ", ".join(f"{name} = %({name})s::{kind}" for name, kind in _RETRY_COLUMNS)
    + " WHERE execution_id = %(execution_id)s::text AND lease_token = %(old_token)s::bigint"
)
_SCAN = (
    "SELECT execution_id, parent_execution_id IS NULL AND finished_at < %(before)s::bigint "
    f"AND {final_sql()} FROM {{t}} "
    "WHERE execution_id > %(after)s::text AND execution_id < %(bound)s::text "
    "ORDER BY execution_id LIMIT %(scan)s::bigint"
)
_LOCK_ROOTS = (
    "SELECT execution_id FROM {t} WHERE execution_id = ANY(%(roots)s::text[]) "
    f"AND parent_execution_id IS NULL AND finished_at < %(before)s::bigint AND {final_sql()} "
    "FOR UPDATE SKIP LOCKED"
)
_TREES = (
    'WITH RECURSIVE tree(root, id) AS (SELECT r COLLATE "C", r COLLATE "C" '
    "FROM unnest(%(roots)s::text[]) AS r "
    "UNION ALL SELECT tree.root, e.execution_id FROM {t} AS e "
    "JOIN tree ON e.parent_execution_id = tree.id) "
    f"SELECT tree.root, tree.id, {final_sql('e')} FROM tree JOIN {{t}} AS e "
    "ON e.execution_id = tree.id"
)
_DELETE = "DELETE FROM {t} WHERE execution_id = ANY(%(ids)s::text[])"


def _saved(record: ExecutionRecord, old_token: int) -> dict[str, Any]:
    values: dict[str, Any] = {
        "execution_id": record.execution_id,
        "old_token": old_token,
        "status": record.status.value,
        "output": record.output,
        "error": error_json(record.error),
        "retry_attempts": record.retry_attempts,
        "updated_at": record.updated_at_ms,
        "start_at": record.start_at_ms,
        "expires_at": record.expires_at_ms,
        "finished_at": record.finished_at_ms,
        "unfinished_children": record.unfinished_children,
        "failed_children": record.failed_children,
        "close_state": record.close_state.value,
        "needs_promise_cancellation": record.stop_requested,
        "executor_id": record.executor_id,
        "lease_token": record.lease_token,
        "timeout_at": record.timeout_at_ms,
        "lease_expiries": record.lease_expiries,
    }
    return values


class PostgresTrees:
    """The abilities' operations, each one transaction on a pooled connection."""

    _names: Names
    _runtime: Runtime
    clock: str

    def _render(self, template: str) -> str:
        return sql.SQL(template).format(t=self._names.table).as_string(None)

    async def _now(self, conn: AsyncConnection[Any], now_ms: int) -> int:
        """``now_ms``, or the server's time when the stored times are the server's."""
        if self.clock == "executor":
            return now_ms
        cur = conn.cursor(row_factory=tuple_row)
        await cur.execute(f"SELECT {CLOCKS['database'][0]}")
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])

    async def _notify_kinds(self, conn: AsyncConnection[Any], kinds: Collection[WorkKind]) -> None:
        if kinds:
            await conn.execute(
                "SELECT pg_notify(%s, kind) FROM unnest(%s::text[]) AS kind",
                [self._names.channel, sorted(kind.value for kind in kinds)],
            )

    # -- abilities.TreeRetry -----------------------------------------------------------------

    async def retry_execution_tree(self, execution_id: str, *, now_ms: int) -> ExecutionRecord:
        params = {"id": execution_id}
        kinds: set[WorkKind] = set()

        async def body(conn: AsyncConnection[Any]) -> ExecutionRecord:
            kinds.clear()
            async with conn.transaction():
                cur = conn.cursor(row_factory=tuple_row)
                await cur.execute(self._render(_LOCK_ROOT), params)
                if await cur.fetchone() is None:
                    raise DurableExecutionNotFoundError(f"No execution {execution_id} was found")
                await cur.execute(self._render(_TREE), params)
                tree = [record_from_row(row, row[-1]) for row in await cur.fetchall()]
                root = next(r for r in tree if r.execution_id == execution_id)
                check_retryable(root, tree)
                tokens = {r.execution_id: r.lease_token for r in tree}
                changed = reopen_tree(tree, execution_id, await self._now(conn, now_ms))
                try:
                    await cur.executemany(
                        self._render(_SAVE),
                        [_saved(r, tokens[r.execution_id]) for r in changed],
                    )
                except UniqueViolation as exc:
                    raise unique_id_taken(execution_id, exc) from exc
                for record in changed:
                    kinds.update(record_work(record))
                await self._notify_kinds(conn, kinds)
            return root

        root = await self._runtime.run("retry an execution tree", body)
        self._runtime.notify_here(kinds)
        return root

    # -- abilities.ExecutionPurge ------------------------------------------------------------

    async def purge_closed_trees(
        self,
        *,
        finished_before_ms: int,
        after_execution_id: str,
        scan_limit: int,
        max_trees: int,
        dry_run: bool = False,
    ) -> PurgeBatch:
        params: dict[str, Any] = {
            "before": finished_before_ms,
            "after": after_execution_id,
            "bound": execution_id_floor(finished_before_ms),
            "scan": scan_limit,
        }

        async def body(conn: AsyncConnection[Any]) -> PurgeBatch:
            async with conn.transaction(force_rollback=dry_run):
                cur = conn.cursor(row_factory=tuple_row)
                await cur.execute(self._render(_SCAN), params)
                scanned = await cur.fetchall()
                roots, next_after = roots_to_purge(scanned, scan_limit, max_trees)
                if not roots:
                    return PurgeBatch(trees=0, executions=0, next_after=next_after)
                await cur.execute(self._render(_LOCK_ROOTS), {**params, "roots": roots})
                locked = [row[0] for row in await cur.fetchall()]
                members: dict[str, list[str]] = {}
                blocked: set[str] = set()
                if locked:
                    await cur.execute(self._render(_TREES), {"roots": locked})
                    for root, member, final in await cur.fetchall():
                        members.setdefault(root, []).append(member)
                        if not final:
                            blocked.add(root)
                doomed = [m for root, ids in members.items() if root not in blocked for m in ids]
                if doomed:
                    await cur.execute(self._render(_DELETE), {"ids": doomed})
                return PurgeBatch(
                    trees=len(members) - len(blocked),
                    executions=len(doomed),
                    next_after=next_after,
                )

        return await self._runtime.run("purge closed trees", body)
