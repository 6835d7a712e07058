"""The PostgreSQL storage's sleeping executions (the
:class:`~durable_execution.storage.abilities.SleepingExecutions` ability), mixed into
:class:`~durable_execution.storage.postgres.PostgresStorage`.

A wake-up is one ``UPDATE ... WHERE status = 'sleeping'``: of concurrent wake-ups, timeouts
and cancellations, the first takes the row lock and the others, re-checking the row once it
is released, find it finished. The loser then reads the execution in a statement of its own
(a fresh snapshot, which sees the winner's commit). The SET clauses mirror
``transitions.apply_wakeup`` and ``transitions.apply_sleep_timeout``.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import tuple_row

from durable_execution.errors import DurableExecutionErrorInfo
from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.postgres.fragments import CLOCKS, NOW, cols, exists, notify_tail
from durable_execution.storage.postgres.rows import COLUMNS, error_json, record_from_row
from durable_execution.storage.postgres.runtime import Runtime
from durable_execution.storage.postgres.schema import Names
from durable_execution.storage.records import CloseState, ExecutionRecord, WorkKind
from durable_execution.storage.sql_rules import FINISHED_SQL, finish_close_state_sql
from durable_execution.storage.transitions import check_wakeup_status

__all__ = ["PostgresSleepingExecutions"]

_CHILD_IDS = (
    "ARRAY(SELECT k.execution_id FROM {t} AS k WHERE k.parent_execution_id = e.execution_id"
    " AND k.parent_execution_id IS NOT NULL AND NOT k.is_finalize ORDER BY k.index_in_parent)"
)

_WAKE = f"""
WITH changed AS (
    UPDATE {{t}} AS e SET
        status = %(status)s::text,
        output = %(output)s::text,
        error = %(error)s::text,
        updated_at = {NOW},
        finished_at = {NOW},
        expires_at = NULL,
        close_state = {finish_close_state_sql("e", "%(status)s::text")}
    WHERE e.task_id = %(task_id)s::text AND e.unique_id = %(unique_id)s::text
        AND e.status = 'sleeping'
    RETURNING {cols("e")}, {_CHILD_IDS} AS child_ids
)
SELECT * FROM changed
{notify_tail(len(COLUMNS) + 1, [("close", exists("changed", "close_state = 'ready'"))])}
"""

# Nothing was sleeping: the latest execution with that id, as it is.
_LATEST = f"""
SELECT {cols("e")}, {_CHILD_IDS} AS child_ids FROM {{t}} AS e
WHERE e.task_id = %(task_id)s::text AND e.unique_id = %(unique_id)s::text
    AND e.unique_id IS NOT NULL
ORDER BY e.status = 'sleeping' DESC, e.created_at DESC, e.execution_id DESC
LIMIT 1
"""

# The error of transitions.sleep_timed_out_error.
_TIMED_OUT_ERROR = (
    "json_build_object('message', format('Sleeping task %%s (%%s) was not woken up within its "
    "timeout', e.task_id, e.unique_id), 'error_type', 'timed_out', 'is_retryable', false)::text"
)

_TIME_OUT = f"""
WITH picked AS (
    SELECT execution_id, expires_at AS deadline FROM {{t}}
    WHERE status = 'sleeping' AND expires_at < {NOW}
    ORDER BY expires_at
    LIMIT %(limit)s::bigint
    FOR UPDATE SKIP LOCKED
), changed AS (
    UPDATE {{t}} AS e SET
        status = 'timed_out',
        output = NULL,
        error = {_TIMED_OUT_ERROR},
        updated_at = {NOW},
        finished_at = {NOW},
        expires_at = NULL,
        close_state = {finish_close_state_sql("e", "'timed_out'")}
    FROM picked AS p
    WHERE e.execution_id = p.execution_id AND e.status = 'sleeping'
    RETURNING e.execution_id, p.deadline, e.close_state
)
SELECT execution_id, deadline FROM changed
{notify_tail(2, [("close", exists("changed", "close_state = 'ready'"))])}
"""


@dataclass(frozen=True, slots=True)
class _SleepingQueries:
    wake: str
    latest: str
    time_out: str

    @classmethod
    def render(cls, names: Names, clock: str) -> _SleepingQueries:
        now, shift = CLOCKS[clock]

        def render(template: str) -> str:
            return (
                sql.SQL(template)
                .format(
                    t=names.table,
                    finished=sql.SQL(FINISHED_SQL),
                    now=sql.SQL(now),
                    shift=sql.SQL(shift),
                )
                .as_string(None)
            )

        return cls(wake=render(_WAKE), latest=render(_LATEST), time_out=render(_TIME_OUT))


class PostgresSleepingExecutions:
    """The ability's operations, each one statement on a pooled connection (a wake-up that
    lost, two)."""

    _names: Names
    _runtime: Runtime
    clock: str

    def _notify_params(self) -> dict[str, Any]:
        raise NotImplementedError  # pragma: no cover - PostgresStorage's

    def _quiet(self, params: Mapping[str, Any], kinds: Collection[WorkKind]) -> None:
        raise NotImplementedError  # pragma: no cover - PostgresStorage's

    @functools.cached_property
    def _sleeping_queries(self) -> _SleepingQueries:
        return _SleepingQueries.render(self._names, self.clock)

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
        params = {
            "task_id": task_id,
            "unique_id": unique_id,
            "status": status.value,
            "output": output if status is S.COMPLETED else None,
            "error": None if status is S.COMPLETED else error_json(error),
            "now": now_ms,
            **self._notify_params(),
        }
        queries = self._sleeping_queries

        async def body(conn: AsyncConnection[Any]) -> ExecutionRecord | None:
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(queries.wake, params)
            for row in await cur.fetchall():
                if row[0] is not None:
                    return record_from_row(row, row[-1])
            await cur.execute(queries.latest, params)
            current = await cur.fetchone()
            return None if current is None else record_from_row(current, current[-1])

        record = await self._runtime.run("wake up a sleeping execution", body)
        self._quiet(params, [WorkKind.CLOSE])
        if record is not None and record.close_state is CloseState.READY:
            # The NOTIFY reaches other storage objects; this one's listeners skip it as their
            # own (they expect their executor to wake itself): tell them here.
            self._runtime.notify_here([WorkKind.CLOSE])
        return record

    async def time_out_sleeping_executions(self, *, now_ms: int, limit: int) -> list[str]:
        if limit <= 0:
            return []
        params = {"now": now_ms, "limit": limit, **self._notify_params()}
        query = self._sleeping_queries.time_out

        async def body(conn: AsyncConnection[Any]) -> list[tuple[str, int]]:
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(query, params)
            return [(row[0], row[1]) for row in await cur.fetchall() if row[0] is not None]

        timed_out = await self._runtime.run("time out sleeping executions", body)
        if timed_out:
            self._quiet(params, [WorkKind.CLOSE])
        return [execution_id for execution_id, _ in sorted(timed_out, key=lambda r: (r[1], r[0]))]
