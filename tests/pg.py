"""PostgreSQL test fixtures: a fresh schema per test, on the server the tests are pointed at.

The server is ``$DURABLE_EXECUTION_TEST_POSTGRES_DSN`` (default: the local ``test`` database).
Isolation comes from the storage's ``schema=`` option: each test gets its own uniquely named
schema (tables, indexes and NOTIFY channel included), never reused, and dropped at the end;
several test runs can share the server at the same time.

Creating a schema (about 20 ms of DDL) and dropping it (about 10 ms) would add up over the
suite, so :data:`SCHEMAS` does both in a background thread: it keeps one schema, already
migrated by the storage's own code, ready ahead of the next test, and drops the used ones
while the tests run.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import queue
import re
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from durable_execution.storage.postgres import PostgresStorage
from durable_execution.storage.postgres.connections import SESSION_SETTINGS
from durable_execution.storage.postgres.schema import Names, ensure_schema
from durable_execution.storage.protocol import DurableStorage

POSTGRES_DSN = os.environ.get(
    "DURABLE_EXECUTION_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)
APPLICATION_NAME = "durable_execution_tests"


def unique_schema(tag: str = "t") -> str:
    """A schema name no other test (nor test run) uses."""
    return f"de_test_{tag}_{uuid.uuid4().hex[:12]}"


async def admin_connection() -> psycopg.AsyncConnection[Any]:
    """A plain autocommit connection for test set-up and inspection (close it after use)."""
    return await psycopg.AsyncConnection.connect(POSTGRES_DSN, autocommit=True)


async def drop_schema(schema: str) -> None:
    """Drop ``schema`` and everything in it, if it exists."""
    async with await admin_connection() as conn:
        await _drop(conn, schema)


class SchemaSupply:
    """Migrated schemas made ahead of use, and used ones dropped, by one background thread."""

    def __init__(self, ahead: int = 1) -> None:
        self._ahead = ahead
        self._ready: queue.Queue[str] = queue.Queue()
        self._jobs: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def take(self) -> str:
        """A new schema holding empty tables (the caller gives it back when done)."""
        self._start()
        self._jobs.put(("create", unique_schema("b")))
        return self._ready.get(timeout=60)

    def give_back(self, schema: str) -> None:
        """Drop ``schema`` (if it exists) soon, in the background."""
        self._start()
        self._jobs.put(("drop", schema))

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._work, name="de-test-schemas", daemon=True)
            self._thread.start()
            atexit.register(self._stop)
            for _ in range(self._ahead):
                self._jobs.put(("create", unique_schema("b")))

    def _stop(self) -> None:
        self._jobs.put(None)
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _work(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        async with await admin_connection() as conn:
            # Blocking this loop while waiting is fine: nothing else runs in it.
            while (job := self._jobs.get()) is not None:
                action, schema = job
                if action == "create":
                    await ensure_schema(conn, Names(schema, "de_"))
                    self._ready.put(schema)
                else:
                    await _drop(conn, schema)
            while not self._ready.empty():  # made ahead, never used
                await _drop(conn, self._ready.get())


SCHEMAS = SchemaSupply()


async def _drop(conn: psycopg.AsyncConnection[Any], schema: str) -> None:
    await conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@contextlib.asynccontextmanager
async def fresh_schema(tag: str = "t") -> AsyncIterator[str]:
    """A new schema name (nothing created), dropped with its tables on exit."""
    schema = unique_schema(tag)
    try:
        yield schema
    finally:
        SCHEMAS.give_back(schema)


async def create_tables(schema: str) -> Names:
    """Create the storage's schema and tables in ``schema``; their names."""
    names = Names(schema, "de_")
    async with await admin_connection() as conn:
        await ensure_schema(conn, names)
    return names


def storage_in(schema: str, **options: Any) -> PostgresStorage:
    """A new storage object on the test server, in ``schema`` (not initialized yet).

    On the executor's clock unless told otherwise: the storage-level tests pass their own
    ``now_ms`` and check the times stored (the executors' tests use ``postgres_backend``, on
    the database's clock, the default)."""
    options.setdefault("max_pool_size", 4)
    options.setdefault("clock", "executor")
    options.setdefault("application_name", APPLICATION_NAME)
    return PostgresStorage(POSTGRES_DSN, schema=schema, **options)


@contextlib.asynccontextmanager
async def caller_transaction() -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A connection of "the application" to the test server, in a transaction: committed when
    the block ends, rolled back when it raises (psycopg does both when the connection, not in
    autocommit mode, is left)."""
    async with await psycopg.AsyncConnection.connect(POSTGRES_DSN) as conn:
        yield conn


@contextlib.asynccontextmanager
async def postgres_backend(
    tmp_path: Path, clock: str = "database"
) -> AsyncIterator[Callable[[], Awaitable[DurableStorage]]]:
    """The ``BACKENDS`` entry: storages sharing one fresh schema, dropped at the end, on the
    database's clock (the default of ``PostgresStorage``) unless told otherwise."""
    schema = await asyncio.to_thread(SCHEMAS.take)
    try:

        async def make() -> DurableStorage:
            storage = storage_in(schema, clock=clock)
            await storage.initialize()
            return storage

        yield make
    finally:
        SCHEMAS.give_back(schema)


# -- query plans -----------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def fill_executions_sql(table: sql.Composable, rows: int, first: int = 0) -> sql.Composed:
    """``INSERT`` of executions ``first`` to ``rows - 1`` in every state, in proportions of a
    busy system.

    Per 100 rows: 79 completed and closed, 1 completed waiting for closure, 10 ready (one a
    suspect, its lease expired twice), 5 running (some flagged for cancellation), 3 parents
    waiting for children (half of them advanceable) and 2 failed waiting for closure; three
    rows in four are children of the fourth, and one row in ten has an idempotency key.
    """
    return sql.SQL(
        """
INSERT INTO {table} (execution_id, task_id, input, status, parent_execution_id,
    index_in_parent, priority, idempotency_key, created_at, updated_at, start_at,
    expires_at, unfinished_children, close_state, needs_promise_cancellation, executor_id,
    timeout_at, lease_expiries)
SELECT 'e' || lpad(i::text, 7, '0'), 'task-' || (i % 10), '{{}}',
    CASE WHEN b < 80 THEN 'completed' WHEN b < 90 THEN 'ready' WHEN b < 95 THEN 'running'
         WHEN b < 98 THEN 'waiting_for_children' ELSE 'failed' END,
    CASE WHEN i % 4 = 0 THEN NULL ELSE 'e' || lpad((i / 4 * 4)::text, 7, '0') END,
    i % 4, i % 3, CASE WHEN i % 10 = 0 THEN 'key-' || i END, i, i, i,
    CASE WHEN b BETWEEN 90 AND 94 THEN i END,
    CASE WHEN b >= 95 AND b < 98 THEN i % 2 ELSE 0 END,
    CASE WHEN b = 79 OR b >= 98 THEN 'ready' WHEN b < 80 THEN 'closed' ELSE 'open' END,
    b = 94, CASE WHEN b BETWEEN 90 AND 94 THEN 'executor-' || (i % 3) END,
    CASE WHEN b BETWEEN 90 AND 94 THEN i + 1000 END, CASE WHEN b = 89 THEN 2 ELSE 0 END
FROM generate_series({first}, {last}) AS i, LATERAL (SELECT i % 100 AS b) AS bucket
"""
    ).format(table=table, first=sql.Literal(first), last=sql.Literal(rows - 1))


def plan_nodes(plan: Any) -> list[dict[str, Any]]:
    """Every node of an ``EXPLAIN (FORMAT JSON)`` plan, depth first."""
    nodes: list[dict[str, Any]] = []
    stack = [plan[0]["Plan"]]
    while stack:
        node = stack.pop()
        nodes.append(node)
        stack.extend(node.get("Plans", []))
    return nodes


def seq_scans_of(plan: Any, table: str) -> list[dict[str, Any]]:
    """The ``Seq Scan`` nodes of ``plan`` that read ``table``."""
    return [
        node
        for node in plan_nodes(plan)
        if node["Node Type"] == "Seq Scan" and node.get("Relation Name") == table
    ]


async def prepare(
    conn: psycopg.AsyncConnection[Any], statement: str, query: str, params: dict[str, Any]
) -> tuple[str, list[Any]]:
    """``PREPARE`` ``query`` (``%(name)s`` placeholders) as ``statement``; returns the
    ``EXECUTE`` text (``%s`` placeholders) and its values from ``params``."""
    names: list[str] = []
    for name in _PLACEHOLDER.findall(query):
        if name not in names:
            names.append(name)
    prepared = _PLACEHOLDER.sub(lambda m: f"${names.index(m.group(1)) + 1}", query).replace(
        "%%", "%"
    )
    await conn.execute(f"PREPARE {statement} AS {prepared}")
    args = ", ".join(["%s"] * len(names))
    return f"EXECUTE {statement}({args})", [params[name] for name in names]


async def explain(
    conn: psycopg.AsyncConnection[Any],
    query: str,
    params: dict[str, Any],
    *,
    generic: bool,
    settings: str = "",
) -> tuple[Any, str]:
    """The JSON and text plans of ``query``: the custom plan for these parameter values, or
    (``generic``) the generic plan the storage's own connections use (their settings, then
    ``settings``: those a statement changes for itself)."""
    cur = psycopg.AsyncClientCursor(conn)
    if not generic:
        text = "\n".join(
            row[0] for row in await (await cur.execute("EXPLAIN " + query, params)).fetchall()
        )
        json_plan = await (await cur.execute("EXPLAIN (FORMAT JSON) " + query, params)).fetchone()
        assert json_plan is not None
        return json_plan[0], text
    statement = f"plan_{uuid.uuid4().hex[:8]}"
    execute, values = await prepare(conn, statement, query, params)
    try:
        await conn.execute(SESSION_SETTINGS)  # as on the storage's own connections
        if settings:
            await conn.execute(settings)
        rows = await (await cur.execute("EXPLAIN " + execute, values)).fetchall()
        json_row = await (await cur.execute("EXPLAIN (FORMAT JSON) " + execute, values)).fetchone()
        assert json_row is not None
        return json_row[0], "\n".join(row[0] for row in rows)
    finally:
        await conn.execute("RESET ALL")
        await conn.execute(f"DEALLOCATE {statement}")
