"""PostgreSQL storage on psycopg 3 (async) and psycopg_pool: many executors, many hosts.

- Every operation is one SQL statement (see :mod:`.queries`), run on an autocommit connection:
  one round trip, whatever the size of the batch, and atomic by itself. Only a batch of
  outcomes naming one execution twice takes one statement per appearance, in a transaction.
- Concurrent executors never wait for each other's rows: rows to take are picked with
  ``FOR UPDATE SKIP LOCKED``; conditional writes are fenced by status and lease token in their
  ``WHERE`` clause, so a write on behalf of a lost claim changes nothing.
- Work-creating statements ``NOTIFY`` (in their own transaction); a dedicated connection
  LISTENs and calls the wake-up listeners (see :mod:`.notify`).
- The schema is created and migrated on first use (see :mod:`.schema`).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Literal

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from durable_execution.checks import check_int
from durable_execution.errors import DurableExecutionErrorInfo
from durable_execution.storage.int_range import (
    check_lease,
    check_leases,
    check_new_executions,
)
from durable_execution.storage.postgres.batches import (
    claim_params,
    first_of_each_key,
    lease_arrays,
)
from durable_execution.storage.postgres.fragments import CLOCKS
from durable_execution.storage.postgres.inspection import PostgresExecutionQueries
from durable_execution.storage.postgres.maintenance import PostgresMaintenance
from durable_execution.storage.postgres.outcomes import PostgresOutcomes
from durable_execution.storage.postgres.queries import Queries
from durable_execution.storage.postgres.rows import (
    children_from_json,
    insert_batch,
    json_ids,
    new_execution_params,
    record_from_row,
)
from durable_execution.storage.postgres.runtime import PoolSettings, Runtime
from durable_execution.storage.postgres.schema import Names, validate_identifiers
from durable_execution.storage.postgres.sleeping import PostgresSleepingExecutions
from durable_execution.storage.postgres.throttle import NotifyThrottle
from durable_execution.storage.postgres.trees import PostgresTrees
from durable_execution.storage.postgres.workers import PostgresWorkerRegistry
from durable_execution.storage.records import (
    CloseResult,
    ExecutionRecord,
    NewExecution,
    ParentToAdvance,
    WorkKind,
)

__all__ = ["PostgresStorage"]

MAX_NOTIFY_INTERVAL_MS = 60_000
"""The longest ``notify_interval_ms``: a minute (wake-ups later than that help nobody)."""


def _callers_connection(connection: object) -> AsyncConnection[Any]:
    """``connection``, checked: inserting anywhere else would not be in the caller's
    transaction."""
    if not isinstance(connection, AsyncConnection):
        raise TypeError(
            f"Expected the caller's psycopg AsyncConnection (in a transaction), got {connection!r}"
        )
    return connection


class PostgresStorage(
    PostgresOutcomes,
    PostgresWorkerRegistry,
    PostgresSleepingExecutions,
    PostgresExecutionQueries,
    PostgresMaintenance,
    PostgresTrees,
):
    """A :class:`~durable_execution.storage.DurableStorage` in a PostgreSQL database, with the
    :class:`~durable_execution.storage.abilities.TransactionalEnqueue`,
    :class:`~durable_execution.storage.abilities.WorkerRegistry`,
    :class:`~durable_execution.storage.abilities.SleepingExecutions`,
    :class:`~durable_execution.storage.abilities.ExecutionQueries`,
    :class:`~durable_execution.storage.abilities.TreeRetry`,
    :class:`~durable_execution.storage.abilities.ExecutionPurge`,
    :class:`~durable_execution.storage.abilities.StampedWrites` and
    :class:`~durable_execution.storage.abilities.Maintenance` abilities (the last one vacuums
    the executions table when the server's autovacuum is off, see :mod:`.maintenance`), and
    :class:`~durable_execution.storage.abilities.CallerClock` with ``clock="executor"``.

    ``dsn_or_pool`` is a libpq connection string or URL (the storage then owns a pool of
    ``min_pool_size`` to ``max_pool_size`` connections, opened on first use and closed by
    :meth:`close`), or an :class:`~psycopg_pool.AsyncConnectionPool` that the caller owns
    (opened if needed, never closed here; autocommit connections save round trips).

    ``schema`` and ``table_prefix`` name where the tables live, so several installations can
    share one database. ``min_pool_size`` and ``max_pool_size`` are at most 1,000.
    ``pool_timeout_s`` (above 0, at most an hour) bounds the wait for a connection.
    ``application_name`` is set on the storage's connections when given. ``listen=False``
    disables the LISTEN connection (executors then rely on polling alone).
    ``notify_interval_ms`` coalesces NOTIFY under load: at most one notifying statement per
    interval, plus one trailing notification (0: every statement notifies; at most 60,000).

    ``clock``: whose clock the stored times come from. ``"database"`` (the default): the
    server's (``statement_timestamp()``), so that leases, timers and timeouts mean the same
    thing for every executor however skewed their clocks are; a start time an executor
    computed (``now`` plus a delay) keeps its distance to that executor's ``now``. The times
    read back (``created_at``, ``expires_at``...) are then the server's. ``"executor"``: the
    ``now_ms`` each call passes, as the other backends do (deterministic; the conformance
    suite uses it).
    """

    def __init__(
        self,
        dsn_or_pool: str | AsyncConnectionPool[Any],
        *,
        schema: str = "public",
        table_prefix: str = "de_",
        min_pool_size: int = 1,
        max_pool_size: int = 10,
        pool_timeout_s: float = 10.0,
        application_name: str | None = None,
        listen: bool = True,
        notify_interval_ms: int = 5,
        clock: Literal["database", "executor"] = "database",
    ) -> None:
        validate_identifiers(schema, table_prefix)
        settings = PoolSettings(
            min_size=min_pool_size,
            max_size=max_pool_size,
            timeout_s=pool_timeout_s,
            application_name=application_name,
        )
        self._names = Names(schema, table_prefix)
        self._runtime = Runtime(dsn_or_pool, self._names, settings, listen=listen)
        if clock not in CLOCKS:
            raise ValueError(f"Invalid clock={clock!r}: expected 'database' or 'executor'")
        self.clock = clock
        self._queries = Queries.render(self._names, clock)
        self._run = self._runtime.run
        check_int(
            "notify_interval_ms", notify_interval_ms, minimum=0, maximum=MAX_NOTIFY_INTERVAL_MS
        )
        self._throttle = NotifyThrottle(notify_interval_ms / 1000, self._notify)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> PostgresStorage:
        """A storage from a ``postgresql://`` (or ``postgres://``) URL.

        The query parameters ``schema``, ``table_prefix`` and ``clock`` are the storage's
        options; the others are passed on to libpq (``sslmode``, ``application_name``, ...).
        """
        parts = urllib.parse.urlsplit(url)
        params = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        ours = {key: value for key, value in params if key in ("schema", "table_prefix", "clock")}
        rest = urllib.parse.urlencode([(k, v) for k, v in params if k not in ours])
        return cls(urllib.parse.urlunsplit(parts._replace(query=rest)), **{**ours, **options})

    def __repr__(self) -> str:
        return (
            f"PostgresStorage({self._runtime.describe()!r}, schema={self._names.schema!r}, "
            f"table_prefix={self._names.prefix!r})"
        )

    @property
    def schema(self) -> str:
        """The schema holding the tables."""
        return self._names.schema

    @property
    def table_prefix(self) -> str:
        """The prefix of the table names."""
        return self._names.prefix

    @property
    def channel(self) -> str:
        """The LISTEN/NOTIFY channel on which wake-ups (``WorkKind`` values) are sent."""
        return self._names.channel

    @property
    def is_listening(self) -> bool:
        """Whether the LISTEN connection that delivers wake-ups is currently up."""
        return self._runtime.is_listening

    # -- lifecycle ---------------------------------------------------------------------------

    async def initialize(self) -> None:
        """Open the pool and create or migrate the schema (idempotent, concurrent-safe)."""
        await self._runtime.ensure_ready()

    async def close(self) -> None:
        """Stop listening and close the owned pool; a later operation opens them again."""
        self._throttle.cancel()
        await self._runtime.close()

    def _notify_params(self) -> dict[str, Any]:
        """The parameters of a statement's NOTIFY: the channel, and whether it may notify now
        (see :mod:`.throttle`)."""
        return {"channel": self._names.channel, "notify": self._throttle.allow()}

    def _quiet(self, params: Mapping[str, Any], kinds: Collection[WorkKind]) -> None:
        """After a statement: if it was kept quiet, have the work it created announced."""
        if not params["notify"] and kinds:
            self._throttle.missed([kind.value for kind in kinds])

    async def _notify(self, kinds: list[str]) -> None:
        async def body(conn: AsyncConnection[Any]) -> None:
            await conn.execute(
                "SELECT pg_notify(%s, kind) FROM unnest(%s::text[]) AS kind",
                [self._names.channel, kinds],
            )

        await self._run("notify", body)

    def stores_caller_times(self) -> bool:
        """See :class:`~durable_execution.storage.abilities.CallerClock`."""
        return self.clock == "executor"

    def add_wakeup_listener(self, listener: Callable[[WorkKind], None]) -> Callable[[], None]:
        """Call ``listener(kind)`` (in the event loop) when a committed change creates work.

        The first listener starts the LISTEN connection; it runs until :meth:`close`.
        """
        return self._runtime.add_listener(listener)

    # -- operations --------------------------------------------------------------------------

    async def insert_executions(
        self,
        executions: Sequence[NewExecution],
        now_ms: int,
        *,
        connection: AsyncConnection[Any] | None = None,
    ) -> list[str]:
        """Insert root executions (all or none); see the protocol.

        ``connection``, kept for code written against release 0.1.0, does what
        :meth:`insert_executions_in_transaction` does.
        """
        return (await self._insert(executions, now_ms, connection))[0]

    async def insert_executions_stamped(
        self, executions: Sequence[NewExecution], now_ms: int
    ) -> tuple[list[str], int | None]:
        """See :class:`~durable_execution.storage.abilities.StampedWrites`: the ``created_at``
        the insert stored."""
        return await self._insert(executions, now_ms, None)

    async def insert_executions_in_transaction(
        self,
        executions: Sequence[NewExecution],
        now_ms: int,
        *,
        connection: AsyncConnection[Any],
    ) -> list[str]:
        """Insert root executions inside the caller's open transaction on ``connection`` (a
        psycopg ``AsyncConnection`` on this database); see
        :class:`~durable_execution.storage.abilities.TransactionalEnqueue`.

        They exist, and the executors are notified, only when the caller commits; a rollback
        drops them.
        """
        ids, _ = await self._insert(executions, now_ms, _callers_connection(connection))
        return ids

    async def _insert(
        self,
        executions: Sequence[NewExecution],
        now_ms: int,
        connection: AsyncConnection[Any] | None,
    ) -> tuple[list[str], int | None]:
        """Insert on a pooled connection, or (``connection``) in the caller's transaction;
        returns the ids and the ``created_at`` stored (``None``: nothing inserted)."""
        executions = list(executions)
        if not executions:
            return [], None
        check_new_executions(executions, now_ms)
        fresh, first_by_key = first_of_each_key(executions)
        if not first_by_key:  # no idempotency key: a plain insert
            sleeping = any(new.unique_id is not None for new in fresh)
            plain = {
                "batch": insert_batch(fresh, sleeping=sleeping),
                "now": now_ms,
                **self._notify_params(),
            }
            query = self._queries.insert_plain_sleeping if sleeping else self._queries.insert_plain

            async def insert(conn: AsyncConnection[Any]) -> int | None:
                cur = self._cursor(conn)
                await cur.execute(query, plain)
                # (count, created_at), and a row of NULLs per notification sent.
                stamps = [at for count, at in await cur.fetchall() if count is not None]
                return stamps[0] if stamps else None

            if connection is None:
                stamp = await self._run("insert executions", insert)
            else:
                stamp = await self._runtime.run_on(connection, "insert executions", insert)
            if any(new.claimed_by is None for new in fresh):
                self._quiet(plain, [WorkKind.READY])
            return [new.execution_id for new in executions], stamp
        params = {
            **new_execution_params(fresh),
            "now": now_ms,
            **self._notify_params(),
        }

        async def body(conn: AsyncConnection[Any]) -> tuple[dict[str, str], int | None]:
            cur = self._cursor(conn)
            await cur.execute(self._queries.insert_roots, params)
            rows = await cur.fetchall()
            inserted = {row[0] for row in rows if row[0] is not None and row[1] is None}
            existing = {row[1]: row[0] for row in rows if row[1] is not None}
            stamp = next((row[2] for row in rows if row[2] is not None), None)
            missing = [
                key
                for key, execution_id in first_by_key.items()
                if key not in existing and execution_id not in inserted
            ]
            if missing:  # inserted by someone else after this statement's snapshot was taken
                await cur.execute(self._queries.existing_keys, {"keys": missing})
                existing.update((key, execution_id) for key, execution_id in await cur.fetchall())
            return existing, stamp

        if connection is None:
            existing, stamp = await self._run("insert executions", body)
        else:
            existing, stamp = await self._runtime.run_on(connection, "insert executions", body)
        if any(new.claimed_by is None for new in fresh):
            self._quiet(params, [WorkKind.READY])
        ids = [
            new.execution_id
            if new.idempotency_key is None
            else existing.get(new.idempotency_key, first_by_key[new.idempotency_key])
            for new in executions
        ]
        return ids, stamp

    async def claim_ready_executions(
        self,
        *,
        executor_id: str,
        lease_ms_by_task: Mapping[str, int],
        now_ms: int,
        limit: int,
        lease_ms: int | None = None,
        max_suspects: int | None = None,
    ) -> list[ExecutionRecord]:
        """Claim ready executions in one statement; see the protocol."""
        if not lease_ms_by_task or limit <= 0:
            return []
        check_leases(now_ms, lease_ms_by_task)
        params = {
            "executor_id": executor_id,
            **claim_params(lease_ms_by_task, lease_ms, max_suspects),
            "now": now_ms,
            "limit": limit,
        }

        async def body(conn: AsyncConnection[Any]) -> list[ExecutionRecord]:
            cur = self._cursor(conn)
            await cur.execute(self._queries.claim_ready, params)
            return [record_from_row(row) for row in await cur.fetchall()]

        return await self._run("claim ready executions", body)

    async def renew_leases(
        self,
        *,
        executor_id: str,
        leases: Sequence[tuple[str, int]],
        now_ms: int,
        lease_ms: int,
    ) -> list[bool]:
        """Renew the leases ``executor_id`` holds, in one statement; see the protocol."""
        leases = list(leases)
        if not leases:
            return []
        params = {
            "executor_id": executor_id,
            **lease_arrays(leases),
            "now": now_ms,
            "lease": lease_ms,
        }

        async def body(conn: AsyncConnection[Any]) -> set[tuple[str, int]]:
            cur = self._cursor(conn)
            await cur.execute(self._queries.renew, params)
            return {(execution_id, token) for execution_id, token in await cur.fetchall()}

        renewed = await self._run("renew leases", body)
        return [lease in renewed for lease in leases]

    async def claim_parents_to_advance(
        self,
        *,
        task_ids: Collection[str],
        now_ms: int,
        lease_ms: int,
        limit: int,
    ) -> list[ParentToAdvance]:
        """Claim advanceable parents with their children's results, in one statement."""
        wanted = list(task_ids)
        if not wanted or limit <= 0:
            return []
        check_lease(now_ms, lease_ms)
        params = {"task_ids": wanted, "now": now_ms, "lease": lease_ms, "limit": limit}

        async def body(conn: AsyncConnection[Any]) -> list[ParentToAdvance]:
            cur = self._cursor(conn)
            await cur.execute(self._queries.claim_parents, params)
            return [
                ParentToAdvance(record_from_row(row), children_from_json(row[-1]))
                for row in await cur.fetchall()
            ]

        return await self._run("claim parents to advance", body)

    async def close_finished_executions(self, *, now_ms: int, limit: int) -> CloseResult:
        """Close a batch of finished executions in one statement; see the protocol."""
        if limit <= 0:
            return CloseResult()
        params = {"limit": limit, "now": now_ms, **self._notify_params()}

        async def body(conn: AsyncConnection[Any]) -> CloseResult:
            cur = self._cursor(conn)
            await cur.execute(self._queries.close, params)
            result = CloseResult()
            for tag, execution_id in await cur.fetchall():
                if tag == "closed":
                    result.closed += 1
                elif tag is not None:
                    result.finished_execution_ids.append(execution_id)
            return result

        result = await self._run("close finished executions", body)
        if result.closed:  # parents may now advance, finished ones wait to be closed
            kinds = [WorkKind.ADVANCE]
            if result.finished_execution_ids:
                kinds += [WorkKind.CLOSE, WorkKind.CANCEL]
            self._quiet(params, kinds)
        return result

    async def cancel_execution(
        self, execution_id: str, *, now_ms: int, error: DurableExecutionErrorInfo
    ) -> ExecutionRecord | None:
        """Cancel an unfinished execution (one statement); see the protocol."""
        params = {
            "id": execution_id,
            "now": now_ms,
            "error": error.to_json(),
            **self._notify_params(),
        }

        async def body(conn: AsyncConnection[Any]) -> ExecutionRecord | None:
            cur = self._cursor(conn)
            await cur.execute(self._queries.cancel_one, params)
            for row in await cur.fetchall():
                if row[0] is not None:
                    return record_from_row(row, row[-1])
            # Unknown, or finished (possibly just now): read it as it is.
            await cur.execute(self._queries.get, {"ids": json_ids([execution_id])})
            current = await cur.fetchone()
            return None if current is None else record_from_row(current, current[-1])

        record = await self._run("cancel an execution", body)
        self._quiet(params, [WorkKind.CLOSE, WorkKind.CANCEL])
        return record

    async def claim_cancellations(self, *, executor_id: str, limit: int) -> list[str]:
        """Ids of cancelled executions run by ``executor_id``, clearing their flag."""
        if limit <= 0:
            return []
        params = {"executor_id": executor_id, "limit": limit}

        async def body(conn: AsyncConnection[Any]) -> list[str]:
            cur = self._cursor(conn)
            await cur.execute(self._queries.claim_cancellations, params)
            return sorted(row[0] for row in await cur.fetchall())

        return await self._run("claim cancellations", body)

    async def expire_leases(
        self, *, now_ms: int, limit: int, max_lease_expiries: int | None = None
    ) -> list[str]:
        """Take back running executions with an expired lease, in one statement."""
        if limit <= 0:
            return []
        params = {
            "now": now_ms,
            "limit": limit,
            "max_expiries": max_lease_expiries,
            **self._notify_params(),
        }

        async def body(conn: AsyncConnection[Any]) -> list[tuple[str, str, str]]:
            cur = self._cursor(conn)
            await cur.execute(self._queries.expire, params)
            return [row for row in await cur.fetchall() if row[0] is not None]

        expired = await self._run("expire leases", body)
        kinds: list[WorkKind] = []
        if any(status == "ready" for _, status, _ in expired):
            kinds.append(WorkKind.READY)
        if any(close_state == "ready" for _, _, close_state in expired):  # failed as crashed
            kinds.append(WorkKind.CLOSE)
        self._quiet(params, kinds)
        return [execution_id for execution_id, _, _ in expired]

    async def release_executions(
        self, leases: Sequence[tuple[str, int]], *, now_ms: int
    ) -> list[bool]:
        """Give back running executions by id and lease token, in one statement."""
        leases = list(leases)
        if not leases:
            return []
        params = {"now": now_ms, **self._notify_params(), **lease_arrays(leases)}

        async def body(conn: AsyncConnection[Any]) -> list[bool]:
            cur = self._cursor(conn)
            await cur.execute(self._queries.release, params)
            released = [False] * len(leases)
            for (index,) in await cur.fetchall():
                if index is not None:
                    released[index] = True
            return released

        released = await self._run("release executions", body)
        if any(released):
            self._quiet(params, [WorkKind.READY])
        return released

    async def get_executions(self, execution_ids: Sequence[str]) -> list[ExecutionRecord]:
        """The stored executions with these ids, in the given order (one statement)."""
        ids = list(execution_ids)
        if not ids:
            return []

        async def body(conn: AsyncConnection[Any]) -> dict[str, ExecutionRecord]:
            cur = self._cursor(conn)
            await cur.execute(self._queries.get, {"ids": json_ids(ids)})
            return {row[0]: record_from_row(row, row[-1]) for row in await cur.fetchall()}

        records = await self._run("read executions", body)
        return [records[execution_id] for execution_id in ids if execution_id in records]

    async def find_finished(self, execution_ids: Collection[str]) -> set[str]:
        """The subset of ``execution_ids`` whose execution is finished (one statement)."""
        ids = list(execution_ids)
        if not ids:
            return set()

        async def body(conn: AsyncConnection[Any]) -> set[str]:
            cur = self._cursor(conn)
            await cur.execute(self._queries.find_finished, {"ids": json_ids(ids)})
            return {row[0] for row in await cur.fetchall()}

        return await self._run("find finished executions", body)
