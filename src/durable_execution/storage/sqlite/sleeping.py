"""The SQLite storage's sleeping executions (the
:class:`~durable_execution.storage.abilities.SleepingExecutions` ability), mixed into
:class:`~durable_execution.storage.sqlite.SQLiteStorage`.

Each operation is one ``BEGIN IMMEDIATE`` transaction (the file's write lock), so a wake-up,
the timeout and a cancellation are serialized: the first one finds the execution sleeping, the
others find it finished. The rules are those of :mod:`durable_execution.storage.transitions`,
applied to the loaded rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar

from durable_execution.errors import DurableExecutionErrorInfo
from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.records import ExecutionRecord, WorkKind
from durable_execution.storage.rows import record_from_row
from durable_execution.storage.sqlite.schema import TABLE, record_to_params
from durable_execution.storage.sqlite.statements import SELECT, UPDATE
from durable_execution.storage.transitions import (
    apply_sleep_timeout,
    apply_wakeup,
    check_wakeup_status,
    record_work,
    wakeup_applies,
)

__all__ = ["SQLiteSleepingExecutions"]

T = TypeVar("T")

# The sleeping execution with that id, else the latest finished one (ids may be reused).
_BY_UNIQUE_ID = (
    f"{SELECT} WHERE task_id = ? AND unique_id = ? AND unique_id IS NOT NULL "
    "ORDER BY status = 'sleeping' DESC, created_at DESC, execution_id DESC LIMIT 1"
)
_DUE = f"{SELECT} WHERE status = 'sleeping' AND expires_at < ? ORDER BY expires_at LIMIT ?"
_CHILD_IDS = (
    f"SELECT execution_id FROM {TABLE} WHERE parent_execution_id = ? AND is_finalize = 0 "
    "ORDER BY index_in_parent"
)


class SQLiteSleepingExecutions:
    """The ability's operations."""

    async def _write(self, body: Callable[[sqlite3.Connection, set[WorkKind]], T]) -> T:
        raise NotImplementedError  # SQLiteStorage runs ``body`` in a write transaction

    async def wake_up_sleeping_execution(
        self,
        task_id: str,
        unique_id: str,
        *,
        now_ms: int,
        status: S,
        output: str | None = None,
        error: DurableExecutionErrorInfo | None = None,
    ) -> ExecutionRecord | None:
        check_wakeup_status(status)

        def body(conn: sqlite3.Connection, kinds: set[WorkKind]) -> ExecutionRecord | None:
            row = conn.execute(_BY_UNIQUE_ID, (task_id, unique_id)).fetchone()
            if row is None:
                return None
            record = record_from_row(row)
            if wakeup_applies(record, status):
                apply_wakeup(record, status, output, error, now_ms)
                conn.execute(UPDATE, record_to_params(record))
                kinds.update(record_work(record))
            record.child_execution_ids = tuple(
                r[0] for r in conn.execute(_CHILD_IDS, (record.execution_id,))
            )
            return record

        return await self._write(body)

    async def time_out_sleeping_executions(self, *, now_ms: int, limit: int) -> list[str]:
        if limit <= 0:
            return []

        def body(conn: sqlite3.Connection, kinds: set[WorkKind]) -> list[str]:
            records = [record_from_row(row) for row in conn.execute(_DUE, (now_ms, limit))]
            for record in records:
                apply_sleep_timeout(record, now_ms)
                kinds.update(record_work(record))
            conn.executemany(UPDATE, [record_to_params(r) for r in records])
            return [record.execution_id for record in records]

        return await self._write(body)
