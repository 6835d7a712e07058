"""The SQLite storage's worker registry (the
:class:`~durable_execution.storage.abilities.WorkerRegistry` ability): the ``de_workers`` table,
mixed into :class:`~durable_execution.storage.sqlite.SQLiteStorage`."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Collection
from typing import TypeVar

from durable_execution.storage.records import WorkKind
from durable_execution.storage.sqlite.schema import TABLE, WORKERS_TABLE
from durable_execution.storage.workers import (
    UnservedTask,
    WorkerInfo,
    decode_task_ids,
    encode_task_ids,
    served_task_ids,
)

__all__ = ["SQLiteWorkerRegistry"]

T = TypeVar("T")

_WORKER_COLUMNS = "executor_id, host, pid, task_ids, started_at, heartbeat_at"
_LIVE = f"SELECT {_WORKER_COLUMNS} FROM {WORKERS_TABLE} WHERE heartbeat_at >= ?"

# The ready executions of the tasks not in a JSON list, one row per task: how many, and the
# oldest (by creation time, then id). Reads every ready row (through the ready index).
_UNSERVED_READY = f"""
SELECT task_id, n, execution_id, created_at FROM (
    SELECT task_id, execution_id, created_at,
           count(*) OVER (PARTITION BY task_id) AS n,
           row_number() OVER (PARTITION BY task_id ORDER BY created_at, execution_id) AS r
    FROM {TABLE}
    WHERE status = 'ready' AND task_id NOT IN (SELECT value FROM json_each(?))
) WHERE r = 1 ORDER BY task_id LIMIT ?
"""


def _worker(row: tuple[str, str, int, str, int, int]) -> WorkerInfo:
    executor_id, host, pid, task_ids, started_at, heartbeat_at = row
    return WorkerInfo(executor_id, host, pid, decode_task_ids(task_ids), started_at, heartbeat_at)


def _live_workers(conn: sqlite3.Connection, now_ms: int, alive_within_ms: int) -> list[WorkerInfo]:
    rows = conn.execute(_LIVE + " ORDER BY started_at, executor_id", (now_ms - alive_within_ms,))
    return [_worker(row) for row in rows]


def _read(conn: sqlite3.Connection, body: Callable[[], T]) -> T:
    """``body`` in a read transaction: one snapshot of the file."""
    conn.execute("BEGIN")
    try:
        return body()
    finally:
        conn.execute("COMMIT")


class SQLiteWorkerRegistry:
    """The registry's operations; each write is one short ``BEGIN IMMEDIATE`` transaction."""

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        raise NotImplementedError  # SQLiteStorage runs ``fn`` in its connection's thread

    async def _write(self, body: Callable[[sqlite3.Connection, set[WorkKind]], T]) -> T:
        raise NotImplementedError  # SQLiteStorage runs ``body`` in a write transaction

    async def register_worker(self, worker: WorkerInfo) -> None:
        params = (
            worker.executor_id,
            worker.host,
            worker.pid,
            encode_task_ids(set(worker.task_ids)),
            worker.started_at_ms,
            worker.heartbeat_at_ms,
        )

        def body(conn: sqlite3.Connection, kinds: set[WorkKind]) -> None:
            conn.execute(
                f"INSERT OR REPLACE INTO {WORKERS_TABLE} ({_WORKER_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                params,
            )

        await self._write(body)

    async def heartbeat_worker(
        self, executor_id: str, *, now_ms: int, task_ids: Collection[str] | None = None
    ) -> bool:
        tasks = None if task_ids is None else encode_task_ids(set(task_ids))

        def body(conn: sqlite3.Connection, kinds: set[WorkKind]) -> bool:
            cursor = conn.execute(
                f"UPDATE {WORKERS_TABLE} SET heartbeat_at = ?, "
                "task_ids = coalesce(?, task_ids) WHERE executor_id = ?",
                (now_ms, tasks, executor_id),
            )
            return cursor.rowcount > 0

        return await self._write(body)

    async def deregister_worker(self, executor_id: str) -> None:
        def body(conn: sqlite3.Connection, kinds: set[WorkKind]) -> None:
            conn.execute(f"DELETE FROM {WORKERS_TABLE} WHERE executor_id = ?", (executor_id,))

        await self._write(body)

    async def list_workers(self, *, now_ms: int, alive_within_ms: int) -> list[WorkerInfo]:
        return await self._call(lambda conn: _live_workers(conn, now_ms, alive_within_ms))

    async def unserved_task_ids(
        self, task_ids: Collection[str], *, now_ms: int, alive_within_ms: int
    ) -> set[str]:
        wanted = set(task_ids)
        if not wanted:
            return set()
        workers = await self.list_workers(now_ms=now_ms, alive_within_ms=alive_within_ms)
        return wanted - served_task_ids(workers, now_ms, alive_within_ms)

    async def find_unserved_ready(
        self, *, now_ms: int, alive_within_ms: int, limit: int
    ) -> list[UnservedTask]:
        def read(conn: sqlite3.Connection) -> list[UnservedTask]:
            workers = _live_workers(conn, now_ms, alive_within_ms)
            served = json.dumps(sorted(served_task_ids(workers, now_ms, alive_within_ms)))
            rows = conn.execute(_UNSERVED_READY, (served, limit)).fetchall()
            return [UnservedTask(*row) for row in rows]

        return await self._call(lambda conn: _read(conn, lambda: read(conn)))

    async def forget_dead_workers(self, *, now_ms: int, dead_for_ms: int) -> int:
        def body(conn: sqlite3.Connection, kinds: set[WorkKind]) -> int:
            cursor = conn.execute(
                f"DELETE FROM {WORKERS_TABLE} WHERE heartbeat_at < ?", (now_ms - dead_for_ms,)
            )
            return cursor.rowcount

        return await self._write(body)
