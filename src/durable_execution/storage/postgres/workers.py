"""The PostgreSQL storage's worker registry (the
:class:`~durable_execution.storage.abilities.WorkerRegistry` ability): the ``<prefix>workers``
table, mixed into :class:`~durable_execution.storage.postgres.PostgresStorage`. Each operation
is one statement."""

from __future__ import annotations

import functools
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import tuple_row

from durable_execution.storage.postgres.runtime import Runtime
from durable_execution.storage.postgres.schema import Names
from durable_execution.storage.workers import UnservedTask, WorkerInfo

__all__ = ["PostgresWorkerRegistry"]

_COLUMNS = "executor_id, host, pid, task_ids, started_at, heartbeat_at"

_REGISTER = f"""
INSERT INTO {{w}} ({_COLUMNS})
VALUES (%(id)s, %(host)s, %(pid)s, %(tasks)s::text[], %(started)s, %(beat)s)
ON CONFLICT (executor_id) DO UPDATE SET host = EXCLUDED.host, pid = EXCLUDED.pid,
    task_ids = EXCLUDED.task_ids, started_at = EXCLUDED.started_at,
    heartbeat_at = EXCLUDED.heartbeat_at
"""
_HEARTBEAT = """
UPDATE {w} SET heartbeat_at = %(now)s, task_ids = coalesce(%(tasks)s::text[], task_ids)
WHERE executor_id = %(id)s
"""
_DEREGISTER = "DELETE FROM {w} WHERE executor_id = %(id)s"
_LIST = f"""
SELECT {_COLUMNS} FROM {{w}} WHERE heartbeat_at >= %(since)s ORDER BY started_at, executor_id
"""
_UNSERVED_IDS = """
SELECT t FROM unnest(%(tasks)s::text[]) AS t
WHERE NOT EXISTS (SELECT 1 FROM {w} WHERE heartbeat_at >= %(since)s AND t = ANY(task_ids))
"""
# The ready executions of the tasks no live worker registered, one row per task: how many,
# and the oldest (by creation time, then id). Reads every ready row (through the ready index).
_UNSERVED_READY = """
WITH served AS (
    SELECT DISTINCT unnest(task_ids) AS task_id FROM {w} WHERE heartbeat_at >= %(since)s
)
SELECT task_id, n, execution_id, created_at FROM (
    SELECT e.task_id, e.execution_id, e.created_at,
           count(*) OVER (PARTITION BY e.task_id) AS n,
           row_number() OVER (PARTITION BY e.task_id ORDER BY e.created_at, e.execution_id) AS r
    FROM {t} AS e
    WHERE e.status = 'ready' AND NOT EXISTS (SELECT 1 FROM served s WHERE s.task_id = e.task_id)
) AS ranked WHERE r = 1 ORDER BY task_id LIMIT %(limit)s
"""
_FORGET = "DELETE FROM {w} WHERE heartbeat_at < %(before)s"


@dataclass(frozen=True, slots=True)
class _WorkerQueries:
    register: str
    heartbeat: str
    deregister: str
    list: str
    unserved_ids: str
    unserved_ready: str
    forget: str

    @classmethod
    def render(cls, names: Names) -> _WorkerQueries:
        def render(template: str) -> str:
            return sql.SQL(template).format(w=names.workers_table, t=names.table).as_string(None)

        return cls(
            register=render(_REGISTER),
            heartbeat=render(_HEARTBEAT),
            deregister=render(_DEREGISTER),
            list=render(_LIST),
            unserved_ids=render(_UNSERVED_IDS),
            unserved_ready=render(_UNSERVED_READY),
            forget=render(_FORGET),
        )


class PostgresWorkerRegistry:
    """The registry's operations, each one statement on a pooled connection."""

    _names: Names
    _runtime: Runtime

    @functools.cached_property
    def _worker_queries(self) -> _WorkerQueries:
        return _WorkerQueries.render(self._names)

    async def _execute(
        self, action: str, query: str, params: dict[str, Any], *, no_jit: bool = False
    ) -> list[Any]:
        """Run one statement; its rows (none for a statement without), or ``[rowcount]``.
        ``no_jit``: in a transaction without JIT compilation, which would cost a scan of a
        large backlog (past ``jit_above_cost``) a few hundred milliseconds more."""

        async def body(conn: AsyncConnection[Any]) -> list[Any]:
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(query, params)
            if cur.description is None:
                return [cur.rowcount]
            return await cur.fetchall()

        async def without_jit(conn: AsyncConnection[Any]) -> list[Any]:
            async with conn.transaction():
                await conn.execute("SET LOCAL jit = off")
                return await body(conn)

        if no_jit:
            return await self._runtime.run(action, without_jit)

        return await self._runtime.run(action, body)

    async def register_worker(self, worker: WorkerInfo) -> None:
        params = {
            "id": worker.executor_id,
            "host": worker.host,
            "pid": worker.pid,
            "tasks": sorted(set(worker.task_ids)),
            "started": worker.started_at_ms,
            "beat": worker.heartbeat_at_ms,
        }
        await self._execute("register a worker", self._worker_queries.register, params)

    async def heartbeat_worker(
        self, executor_id: str, *, now_ms: int, task_ids: Collection[str] | None = None
    ) -> bool:
        tasks = None if task_ids is None else sorted(set(task_ids))
        params = {"id": executor_id, "now": now_ms, "tasks": tasks}
        (count,) = await self._execute("heartbeat", self._worker_queries.heartbeat, params)
        return bool(count)

    async def deregister_worker(self, executor_id: str) -> None:
        params = {"id": executor_id}
        await self._execute("deregister a worker", self._worker_queries.deregister, params)

    async def list_workers(self, *, now_ms: int, alive_within_ms: int) -> list[WorkerInfo]:
        params = {"since": now_ms - alive_within_ms}
        rows = await self._execute("list workers", self._worker_queries.list, params)
        return [
            WorkerInfo(executor_id, host, pid, tuple(task_ids), started, beat)
            for executor_id, host, pid, task_ids, started, beat in rows
        ]

    async def unserved_task_ids(
        self, task_ids: Collection[str], *, now_ms: int, alive_within_ms: int
    ) -> set[str]:
        wanted = sorted(set(task_ids))
        if not wanted:
            return set()
        params = {"tasks": wanted, "since": now_ms - alive_within_ms}
        rows = await self._execute("find unserved tasks", self._worker_queries.unserved_ids, params)
        return {row[0] for row in rows}

    async def find_unserved_ready(
        self, *, now_ms: int, alive_within_ms: int, limit: int
    ) -> list[UnservedTask]:
        params = {"since": now_ms - alive_within_ms, "limit": limit}
        query = self._worker_queries.unserved_ready
        rows = await self._execute("find unserved ready executions", query, params, no_jit=True)
        return [UnservedTask(*row) for row in rows]

    async def forget_dead_workers(self, *, now_ms: int, dead_for_ms: int) -> int:
        params = {"before": now_ms - dead_for_ms}
        (count,) = await self._execute("forget dead workers", self._worker_queries.forget, params)
        return int(count)
