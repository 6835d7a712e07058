"""Recording outcomes on PostgreSQL: the storage's ``record_outcomes``, in the fewest
statements its batch allows (one in the usual cases), as a mixin of
:class:`~durable_execution.storage.postgres.PostgresStorage`."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, TypeVar

from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import TupleRow, tuple_row

from durable_execution.storage.int_range import check_outcomes
from durable_execution.storage.postgres.batches import rounds, work_created_by
from durable_execution.storage.postgres.queries import Queries
from durable_execution.storage.postgres.rows import finish_batch, outcome_params, succeed_batch
from durable_execution.storage.postgres.runtime import Runtime
from durable_execution.storage.records import ExecutionOutcome, WorkKind

__all__ = ["PostgresOutcomes"]

T = TypeVar("T")


class PostgresOutcomes:
    """``record_outcomes`` and its three statements (see ``queries.py``), which return the
    time each outcome was stamped with (the ``StampedWrites`` ability)."""

    _queries: Queries
    _runtime: Runtime

    def _notify_params(self) -> dict[str, Any]:
        raise NotImplementedError  # pragma: no cover - PostgresStorage's

    def _quiet(self, params: Mapping[str, Any], kinds: Collection[WorkKind]) -> None:
        raise NotImplementedError  # pragma: no cover - PostgresStorage's

    @staticmethod
    def _cursor(conn: AsyncConnection[Any]) -> AsyncCursor[TupleRow]:
        return conn.cursor(row_factory=tuple_row)

    async def record_outcomes(
        self, outcomes: Sequence[ExecutionOutcome], now_ms: int
    ) -> list[bool]:
        """Apply fenced outcomes (and insert the children of those applied) atomically."""
        return [at is not None for at in await self.record_outcomes_stamped(outcomes, now_ms)]

    async def record_outcomes_stamped(
        self, outcomes: Sequence[ExecutionOutcome], now_ms: int
    ) -> list[int | None]:
        """See :class:`~durable_execution.storage.abilities.StampedWrites`: each statement
        returns the ``updated_at`` it stored in the rows it applied."""
        outcomes = list(outcomes)
        if not outcomes:
            return []
        check_outcomes(outcomes, now_ms)
        if any(o.successor is not None for o in outcomes):
            return await self._with_successors(outcomes, now_ms)
        if all(o.status.is_finished and not o.children for o in outcomes) and len(
            {o.execution_id for o in outcomes}
        ) == len(outcomes):
            return await self._finish(outcomes, now_ms)
        return await self._outcomes(outcomes, now_ms)

    async def _outcomes(self, outcomes: list[ExecutionOutcome], now_ms: int) -> list[int | None]:
        """Any outcomes without successors: one statement per appearance of an execution."""
        statements = [
            {**outcome_params(batch, now_ms), **self._notify_params()} for batch in rounds(outcomes)
        ]

        created: set[WorkKind] = set()

        async def run(conn: AsyncConnection[Any], applied: list[int | None]) -> None:
            for params in statements:
                cur = self._cursor(conn)
                await cur.execute(self._queries.record_outcomes, params)
                for index, status, close_state, unfinished, failed, at in await cur.fetchall():
                    if index is None and close_state == "advance":  # a parent of closed children
                        created.add(WorkKind.ADVANCE)
                    elif index is not None:
                        applied[index] = at
                        row = (status, close_state, unfinished, failed)
                        created.update(work_created_by(outcomes[index], row))

        async def body(conn: AsyncConnection[Any]) -> list[int | None]:
            applied: list[int | None] = [None] * len(outcomes)
            if len(statements) == 1:  # the usual case: one statement, one round trip
                await run(conn, applied)
            else:  # an execution appears twice: one statement per appearance, in order
                async with conn.transaction():
                    await run(conn, applied)
            return applied

        applied = await self._runtime.run("record outcomes", body)
        for params in statements:
            self._quiet(params, created)
        return applied

    async def _with_successors(
        self, outcomes: list[ExecutionOutcome], now_ms: int
    ) -> list[int | None]:
        """Outcomes with successors take the ``succeed`` statement, the others the usual
        ones. When an execution appears twice, each outcome is applied on its own, in order."""
        if len({o.execution_id for o in outcomes}) < len(outcomes):
            return [(await self.record_outcomes_stamped([o], now_ms))[0] for o in outcomes]
        succeeding = [(i, o) for i, o in enumerate(outcomes) if o.successor is not None]
        others = [(i, o) for i, o in enumerate(outcomes) if o.successor is None]
        params = {"batch": succeed_batch(succeeding), "now": now_ms, **self._notify_params()}

        async def body(conn: AsyncConnection[Any]) -> list[tuple[int, int]]:
            cur = self._cursor(conn)
            await cur.execute(self._queries.succeed, params)
            return [(index, at) for index, at in await cur.fetchall() if index is not None]

        applied: list[int | None] = [None] * len(outcomes)
        for index, at in await self._runtime.run("record outcomes", body):
            applied[index] = at
        new_ready = any(
            applied[i] is not None and o.successor is not None and o.successor.claimed_by is None
            for i, o in succeeding
        )
        self._quiet(params, [WorkKind.READY] if new_ready else [])
        if others:
            rest = await self.record_outcomes_stamped([o for _, o in others], now_ms)
            for (index, _), done in zip(others, rest, strict=True):
                applied[index] = done
        return applied

    async def _finish(self, outcomes: list[ExecutionOutcome], now_ms: int) -> list[int | None]:
        """Outcomes that all finish their execution without children: one plain UPDATE."""
        params = {
            "batch": finish_batch(list(enumerate(outcomes))),
            "now": now_ms,
            **self._notify_params(),
        }

        async def body(conn: AsyncConnection[Any]) -> list[int | None]:
            cur = self._cursor(conn)
            await cur.execute(self._queries.finish, params)
            applied: list[int | None] = [None] * len(outcomes)
            for index, close_state, at in await cur.fetchall():
                if index is None:
                    if close_state == "advance":  # a parent of children closed here
                        created.add(WorkKind.ADVANCE)
                    continue
                applied[index] = at
                if close_state == "ready":
                    created.add(WorkKind.CLOSE)
            return applied

        created: set[WorkKind] = set()
        applied = await self._runtime.run("record outcomes", body)
        self._quiet(params, created)
        return applied
