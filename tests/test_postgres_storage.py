"""What is specific to PostgreSQL: schema management, isolation, LISTEN/NOTIFY wake-ups,
reconnection, row locks held by other sessions, and the query plans of the hot statements.

Everything the other backends share is tested by the executor suites and the conformance
suite, which run on PostgreSQL through ``tests/backends.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import pq, sql
from psycopg_pool import AsyncConnectionPool

from durable_execution.errors import (
    DuplicateExecutionError,
    DurableExecutionErrorInfo,
    DurableStorageError,
    StorageSchemaError,
)
from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage import DurableStorage, storage_from_url
from durable_execution.storage.inspection import ExecutionFilter
from durable_execution.storage.postgres import PostgresStorage, configure_connection
from durable_execution.storage.postgres.connections import SESSION_SETTINGS, new_pool
from durable_execution.storage.postgres.inspection import list_sql, tree_sql
from durable_execution.storage.postgres.queries import Queries
from durable_execution.storage.postgres.rows import (
    finish_batch,
    insert_batch,
    json_ids,
    new_execution_params,
    outcome_params,
    succeed_batch,
)
from durable_execution.storage.postgres.schema import MIGRATIONS, SCHEMA_VERSION, Names
from durable_execution.storage.records import ExecutionOutcome, NewExecution, WorkKind
from durable_execution.storage.transitions import cancelled_child_error, completion_failed_error

from .helpers import wait_until
from .pg import (
    POSTGRES_DSN,
    admin_connection,
    create_tables,
    explain,
    fill_executions_sql,
    fresh_schema,
    plan_nodes,
    prepare,
    seq_scans_of,
    storage_in,
)

NOW = 1_700_000_000_000
CANCELLED = DurableExecutionErrorInfo("cancelled by the test", is_retryable=False)


def new(execution_id: str, task_id: str = "task", **fields: Any) -> NewExecution:
    return NewExecution(execution_id, task_id, f'"{execution_id}"', NOW, **fields)


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    async with fresh_schema("pg") as name:
        yield name


@pytest.fixture
async def storages(schema: str) -> AsyncIterator[list[PostgresStorage]]:
    """Storages made by the test (append to the list); all closed at the end."""
    made: list[PostgresStorage] = []
    yield made
    for storage in made:
        await storage.close()


@pytest.fixture
def make_storage(schema: str, storages: list[PostgresStorage]) -> Callable[..., PostgresStorage]:
    """``make_storage(**options)``: a new storage in the test's schema, closed at the end."""

    def make(**options: Any) -> PostgresStorage:
        storage = storage_in(schema, **options)
        storages.append(storage)
        return storage

    return make


async def versions(schema: str, prefix: str = "de_") -> list[int]:
    async with await admin_connection() as conn:
        table = sql.Identifier(schema, f"{prefix}schema_version")
        cur = await conn.execute(sql.SQL("SELECT version FROM {} ORDER BY version").format(table))
        return [row[0] for row in await cur.fetchall()]


async def test_initialize_creates_the_schema_once_and_is_idempotent(
    schema: str, make_storage: Callable[..., PostgresStorage]
) -> None:
    first = make_storage()
    await first.initialize()
    await first.initialize()
    second = make_storage()
    await second.initialize()
    assert await versions(schema) == [version for version, _ in MIGRATIONS]
    assert await second.insert_executions([new("a")], NOW) == ["a"]


async def test_concurrent_first_starts_migrate_once(
    schema: str, storages: list[PostgresStorage]
) -> None:
    storages.extend(storage_in(schema, min_pool_size=0) for _ in range(8))
    await asyncio.gather(*(storage.initialize() for storage in storages))
    assert await versions(schema) == [version for version, _ in MIGRATIONS]
    ids = await asyncio.gather(
        *(s.insert_executions([new(f"x{i}")], NOW) for i, s in enumerate(storages))
    )
    assert sorted(i for (i,) in ids) == [f"x{i}" for i in range(8)]


async def test_prefixes_and_schemas_are_isolated(storages: list[PostgresStorage]) -> None:
    async with fresh_schema("iso") as schema_a, fresh_schema("iso") as schema_b:
        one = storage_in(schema_a, table_prefix="one_")
        two = storage_in(schema_a, table_prefix="two_")
        other = storage_in(schema_b, table_prefix="one_")
        storages.extend((one, two, other))
        await asyncio.gather(one.initialize(), two.initialize(), other.initialize())
        await one.insert_executions([new("a", idempotency_key="k")], NOW)
        await two.insert_executions([new("b", idempotency_key="k")], NOW)
        assert [r.execution_id for r in await one.get_executions(["a", "b"])] == ["a"]
        assert [r.execution_id for r in await two.get_executions(["a", "b"])] == ["b"]
        assert await other.get_executions(["a", "b"]) == []
        claimed = await two.claim_ready_executions(
            executor_id="x", lease_ms_by_task={"task": 1000}, now_ms=NOW, limit=10
        )
        assert [r.execution_id for r in claimed] == ["b"]
        assert len({s.channel for s in (one, two, other)}) == 3
        for storage in (one, two, other):
            await storage.close()


async def test_a_newer_schema_version_is_refused(
    schema: str, make_storage: Callable[..., PostgresStorage]
) -> None:
    first = make_storage()
    await first.initialize()
    async with await admin_connection() as conn:
        table = sql.Identifier(schema, "de_schema_version")
        await conn.execute(
            sql.SQL("INSERT INTO {} VALUES (%s, 0)").format(table), [SCHEMA_VERSION + 1]
        )
    newer = make_storage()
    with pytest.raises(StorageSchemaError, match="newer"):
        await newer.initialize()
    with pytest.raises(StorageSchemaError, match="newer"):  # and again: nothing was left open
        await newer.get_executions(["a"])


async def test_a_foreign_table_is_refused(
    schema: str, make_storage: Callable[..., PostgresStorage]
) -> None:
    async with await admin_connection() as conn:
        await conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        await conn.execute(
            sql.SQL("CREATE TABLE {} (id int)").format(sql.Identifier(schema, "de_executions"))
        )
    storage = make_storage()
    with pytest.raises(StorageSchemaError, match="did not create"):
        await storage.initialize()


def test_options_are_validated_and_repr_hides_the_password() -> None:
    for bad in ("", "1abc", "a-b", 'a"b', "a" * 64):
        with pytest.raises(ValueError, match="schema"):
            PostgresStorage(POSTGRES_DSN, schema=bad)
    for bad in ("1x", "a b", "x;", "p" * 33):
        with pytest.raises(ValueError, match="table_prefix"):
            PostgresStorage(POSTGRES_DSN, table_prefix=bad)
    with pytest.raises(ValueError, match="max_pool_size"):
        PostgresStorage(POSTGRES_DSN, min_pool_size=5, max_pool_size=2)
    with pytest.raises(TypeError):
        PostgresStorage(42)  # type: ignore[arg-type]
    storage = PostgresStorage("postgresql://alice:s3cret@db.example:5433/jobs", schema="q")
    assert "s3cret" not in repr(storage)
    for shown in ("alice", "db.example", "jobs", "'q'"):
        assert shown in repr(storage)
    keyword = PostgresStorage("host=db.example password=s3cret dbname=jobs")
    assert "s3cret" not in repr(keyword)


def test_it_satisfies_the_storage_protocol() -> None:
    assert isinstance(PostgresStorage(POSTGRES_DSN), DurableStorage)


def test_storage_from_url_returns_a_postgres_storage() -> None:
    storage = storage_from_url("postgresql://bob:pw@localhost/test")
    assert isinstance(storage, PostgresStorage)
    assert "pw" not in repr(storage)
    other = storage_from_url(
        "postgres://localhost/test?schema=jobs&table_prefix=x_&sslmode=disable"
    )
    assert isinstance(other, PostgresStorage)
    assert (other.schema, other.table_prefix) == ("jobs", "x_")


async def test_a_pool_given_by_the_caller_is_used_and_left_open(schema: str) -> None:
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        POSTGRES_DSN, min_size=1, max_size=2, open=False
    )
    await pool.open()
    try:
        storage = PostgresStorage(pool, schema=schema)
        assert await storage.insert_executions([new("a")], NOW) == ["a"]
        await storage.close()
        assert not pool.closed
        again = PostgresStorage(pool, schema=schema)
        assert [r.execution_id for r in await again.get_executions(["a"])] == ["a"]
        await again.close()
    finally:
        await pool.close()


async def test_a_caller_pool_configured_like_ours_gets_our_planner_settings(schema: str) -> None:
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        POSTGRES_DSN,
        min_size=1,
        max_size=1,
        open=False,
        configure=configure_connection,
        kwargs={"autocommit": True, "prepare_threshold": 0},
    )
    await pool.open()
    try:
        storage = PostgresStorage(pool, schema=schema)
        assert await storage.insert_executions([new("a")], NOW) == ["a"]
        async with pool.connection() as conn:
            settings = await (
                await conn.execute(
                    "SELECT current_setting('plan_cache_mode'), "
                    "current_setting('enable_seqscan'), current_setting('enable_bitmapscan'), "
                    "current_setting('jit')"
                )
            ).fetchone()
        assert settings == ("force_generic_plan", "off", "off", "off")
        await storage.close()
    finally:
        await pool.close()


def _round_trips(trace: str) -> list[str]:
    """The messages the client sent, one line per round trip (a ``Sync`` or a simple
    ``Query`` ends one), from a libpq trace."""
    trips: list[str] = []
    sent: list[str] = []
    for line in trace.splitlines():
        fields = line.split("\t")
        if len(fields) < 3 or fields[0] != "F":
            continue
        sent.append(fields[2].strip())
        if sent[-1] in ("Sync", "Query"):
            trips.append(" ".join(sent))
            sent = []
    return trips


async def test_reads_are_one_round_trip_each(schema: str, tmp_path: Path) -> None:
    """``get_executions`` and ``find_finished`` on a pooled connection: one prepared
    statement each, with nothing else sent (no SET, BEGIN, COMMIT, nor a check query)."""
    pool = new_pool(POSTGRES_DSN, min_size=1, max_size=1, timeout_s=5, connect_kwargs={})
    await pool.open()
    try:
        storage = PostgresStorage(pool, schema=schema)
        assert await storage.insert_executions([new("a")], NOW) == ["a"]
        assert len(await storage.get_executions(["a"])) == 1  # prepares the statements
        assert await storage.find_finished(["a"]) == set()
        async with pool.connection() as conn:
            pgconn = conn.pgconn
        with open(tmp_path / "trace", "w+") as trace:
            pgconn.trace(trace.fileno())
            pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
            try:
                assert [r.execution_id for r in await storage.get_executions(["a", "b"])] == ["a"]
                assert await storage.find_finished(["a", "b"]) == set()
            finally:
                pgconn.untrace()
            trace.seek(0)
            trips = _round_trips(trace.read())
        assert trips == ["Bind Describe Execute Sync"] * 2
        await storage.close()
    finally:
        await pool.close()


async def test_duplicate_ids_insert_nothing_of_the_batch(
    make_storage: Callable[..., PostgresStorage],
) -> None:
    storage = make_storage()
    await storage.insert_executions([new("a")], NOW)
    with pytest.raises(DuplicateExecutionError) as error:
        await storage.insert_executions([new("b"), new("a")], NOW)
    assert isinstance(error.value.__cause__, psycopg.errors.UniqueViolation)
    with pytest.raises(DuplicateExecutionError):
        await storage.insert_executions([new("c"), new("c")], NOW)
    assert [r.execution_id for r in await storage.get_executions(["a", "b", "c"])] == ["a"]


async def test_one_execution_twice_in_an_outcome_batch_is_applied_in_order(
    make_storage: Callable[..., PostgresStorage],
) -> None:
    storage = make_storage()
    await storage.insert_executions([new("a"), new("b")], NOW)
    claimed = await storage.claim_ready_executions(
        executor_id="x", lease_ms_by_task={"task": 1000}, now_ms=NOW, limit=2
    )
    token = {r.execution_id: r.lease_token for r in claimed}
    retry = ExecutionOutcome("a", token["a"], S.RUNNING, S.READY, start_at_ms=NOW)
    done = ExecutionOutcome("a", token["a"], S.READY, S.COMPLETED, output='"late"')
    finish_b = ExecutionOutcome("b", token["b"], S.RUNNING, S.COMPLETED, output='"b"')
    assert await storage.record_outcomes([retry, finish_b, done], NOW + 1) == [True, True, True]
    a, b = await storage.get_executions(["a", "b"])
    assert (a.status, a.retry_attempts, a.output) == (S.COMPLETED, 1, '"late"')
    assert (b.status, b.output) == (S.COMPLETED, '"b"')


@pytest.mark.parametrize("completion_error", [DurableExecutionErrorInfo("boom ✓ 100%"), None])
async def test_errors_written_by_sql_equal_the_reference_ones(
    make_storage: Callable[..., PostgresStorage], completion_error: DurableExecutionErrorInfo | None
) -> None:
    """Closing builds two errors in SQL; they must be those of ``transitions``."""
    storage = make_storage()
    await storage.insert_executions([new("p"), new("q")], NOW)
    lease = {"task": 1000}
    claimed = await storage.claim_ready_executions(
        executor_id="x", lease_ms_by_task=lease, now_ms=NOW, limit=2
    )
    token = {r.execution_id: r.lease_token for r in claimed}
    completion = new("p.f", root_execution_id="p", parent_execution_id="p", is_completion=True)
    kids = [new(f"q.{i}", root_execution_id="q", parent_execution_id="q") for i in range(2)]
    outcomes = [
        ExecutionOutcome(
            "p",
            token["p"],
            S.RUNNING,
            S.WAITING_FOR_ON_RUN_AND_CHILDREN_COMPLETE,
            children=[completion],
        ),
        ExecutionOutcome("q", token["q"], S.RUNNING, S.WAITING_FOR_CHILDREN, children=kids),
    ]
    assert await storage.record_outcomes(outcomes, NOW) == [True, True]
    (fin,) = await storage.claim_ready_executions(
        executor_id="x", lease_ms_by_task=lease, now_ms=NOW, limit=1
    )
    assert fin.execution_id == "p.f"
    timed_out = ExecutionOutcome(
        "p.f", fin.lease_token, S.RUNNING, S.TIMED_OUT, error=completion_error
    )
    assert await storage.record_outcomes([timed_out], NOW) == [True]
    await storage.cancel_execution("q", now_ms=NOW, error=CANCELLED)
    (finished_fin, cancelled_q) = await storage.get_executions(["p.f", "q"])
    result = await storage.close_finished_executions(now_ms=NOW + 1, limit=10)
    assert result.closed == 2
    assert sorted(result.finished_execution_ids) == ["p", "q.0", "q.1"]
    p, q0, q1 = await storage.get_executions(["p", "q.0", "q.1"])
    assert p.status is S.ON_RUN_AND_CHILDREN_COMPLETE_FAILED
    assert p.error == completion_failed_error(finished_fin)
    assert q0.error == q1.error == cancelled_child_error(cancelled_q)


# -- wake-ups --------------------------------------------------------------------------------


class Received:
    """A wake-up listener that records what it is told."""

    def __init__(self) -> None:
        self.kinds: list[WorkKind] = []

    def __call__(self, kind: WorkKind) -> None:
        self.kinds.append(kind)


async def test_notify_wakes_a_listener_of_another_storage(
    make_storage: Callable[..., PostgresStorage],
) -> None:
    listening, writing = make_storage(), make_storage()
    await asyncio.gather(listening.initialize(), writing.initialize())
    received = Received()
    remove = listening.add_wakeup_listener(received)
    await wait_until(lambda: listening.is_listening, message="the LISTEN connection")
    await writing.insert_executions([new("a")], NOW)
    await wait_until(lambda: WorkKind.READY in received.kinds, message="a READY wake-up")
    claimed = await writing.claim_ready_executions(
        executor_id="x", lease_ms_by_task={"task": 1000}, now_ms=NOW, limit=1
    )
    child = new("a.0", root_execution_id="a", parent_execution_id="a")
    finish = ExecutionOutcome(
        "a", claimed[0].lease_token, S.RUNNING, S.WAITING_FOR_CHILDREN, children=[child]
    )
    await writing.record_outcomes([finish], NOW)
    (running,) = await writing.claim_ready_executions(
        executor_id="x", lease_ms_by_task={"task": 1000}, now_ms=NOW, limit=1
    )
    await writing.cancel_execution("a.0", now_ms=NOW, error=CANCELLED)
    await wait_until(lambda: WorkKind.CANCEL in received.kinds, message="a CANCEL wake-up")
    await wait_until(lambda: WorkKind.CLOSE in received.kinds, message="a CLOSE wake-up")
    await writing.close_finished_executions(now_ms=NOW, limit=10)
    await wait_until(lambda: WorkKind.ADVANCE in received.kinds, message="an ADVANCE wake-up")
    remove()
    assert running.execution_id == "a.0"


async def test_a_batch_notifies_each_kind_once(
    make_storage: Callable[..., PostgresStorage],
) -> None:
    """Notifications of one transaction arrive before those of a later one, so a marker sent
    after the batch tells when all of the batch's notifications have arrived."""
    storage = make_storage(notify_interval_ms=0)  # every statement may notify
    await storage.initialize()
    channel = storage.channel
    async with await admin_connection() as listener, await admin_connection() as marker:
        await listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        await storage.insert_executions([new(f"e{i}") for i in range(50)], NOW)
        await storage.insert_executions([new("dup", idempotency_key="e0-key")], NOW)
        await storage.insert_executions([new("dup2", idempotency_key="e0-key")], NOW)
        await marker.execute("SELECT pg_notify(%s, 'marker')", [channel])
        payloads: list[str] = []
        async for notification in listener.notifies(timeout=10):
            payloads.append(notification.payload)
            if notification.payload == "marker":
                break
    # One for the batch of 50, one for the first keyed insert, none for the duplicate key.
    assert payloads == ["ready", "ready", "marker"]


async def test_a_burst_of_statements_is_coalesced_into_few_notifications(
    make_storage: Callable[..., PostgresStorage],
) -> None:
    storage = make_storage(notify_interval_ms=50)
    await storage.initialize()
    channel = storage.channel
    async with await admin_connection() as listener:
        await listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        for i in range(40):  # 40 statements, each creating ready work, well within 50 ms each
            await storage.insert_executions([new(f"burst{i}")], NOW)
        payloads: list[str] = []
        async for notification in listener.notifies(timeout=2):
            payloads.append(notification.payload)
            if len(payloads) >= 40:
                break
    # The first statement notifies at once; the rest of the burst is announced by trailing
    # notifications (one of every kind per interval), never one per statement.
    assert payloads[0] == "ready"
    assert payloads.count("ready") < 10
    assert "ready" in payloads[1:]  # the trailing one: the burst's last work is announced


def test_notify_interval_is_validated() -> None:
    with pytest.raises(ValueError, match="notify_interval_ms"):
        storage_in("public", notify_interval_ms=-1)


async def test_after_all_connections_are_killed_operations_and_wakeups_resume(
    make_storage: Callable[..., PostgresStorage],
) -> None:
    application = f"de_test_kill_{uuid.uuid4().hex[:8]}"
    storage = make_storage(application_name=application, min_pool_size=2)
    writer = make_storage()
    await asyncio.gather(storage.initialize(), writer.initialize())
    received = Received()
    storage.add_wakeup_listener(received)
    await wait_until(lambda: storage.is_listening, message="the LISTEN connection")
    await storage.insert_executions([new("before")], NOW)

    async with await admin_connection() as admin:
        cur = await admin.execute(
            "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s",
            [application],
        )
        killed = [pid for pid, _ in await cur.fetchall()]
        assert len(killed) >= 3  # the pool's two connections and the listener's

        async def all_gone() -> bool:
            cur = await admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [killed]
            )
            row = await cur.fetchone()
            return row is not None and row[0] == 0

        await wait_until(all_gone, message="the killed backends to exit")

    # The pool notices its dead connections before using them: no operation fails.
    assert [r.execution_id for r in await storage.get_executions(["before"])] == ["before"]
    assert await storage.insert_executions([new("again")], NOW) == ["again"]
    # The listener reconnects, then wakes every kind once (it may have missed notifications).
    await wait_until(lambda: set(received.kinds) == set(WorkKind), message="a reconnection")
    received.kinds.clear()
    await writer.insert_executions([new("after")], NOW)
    await wait_until(lambda: WorkKind.READY in received.kinds, message="a wake-up again")


async def test_an_operation_cut_off_by_the_server_raises_a_storage_error(
    schema: str, make_storage: Callable[..., PostgresStorage]
) -> None:
    application = f"de_test_cut_{uuid.uuid4().hex[:8]}"
    storage = make_storage(application_name=application)
    await storage.insert_executions([new("a")], NOW)
    names = Names(schema, "de_")
    async with (
        await admin_connection() as holder,
        await admin_connection() as admin,
        holder.transaction(),  # hold the row: the cancellation has to wait for it
    ):
        await holder.execute(
            sql.SQL("SELECT 1 FROM {} WHERE execution_id = 'a' FOR UPDATE").format(names.table)
        )
        cancel = asyncio.ensure_future(storage.cancel_execution("a", now_ms=NOW, error=CANCELLED))

        async def waiting_backend() -> list[Any]:
            cur = await admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s "
                "AND wait_event_type = 'Lock'",
                [application],
            )
            return await cur.fetchall()

        (pid,), *_ = await wait_until(waiting_backend, message="the blocked cancellation")
        await admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        with pytest.raises(DurableStorageError) as error:
            await cancel
        assert isinstance(error.value.__cause__, psycopg.OperationalError)
    record = await storage.cancel_execution("a", now_ms=NOW, error=CANCELLED)
    assert record is not None
    assert record.status is S.CANCELLED


# -- rows held by other sessions -------------------------------------------------------------


@contextlib.asynccontextmanager
async def holding(schema: str, execution_id: str) -> AsyncIterator[None]:
    """Hold a row lock on ``execution_id`` in another session while inside the block."""
    async with await admin_connection() as conn, conn.transaction():
        await conn.execute(
            sql.SQL("SELECT 1 FROM {} WHERE execution_id = %s FOR UPDATE").format(
                Names(schema, "de_").table
            ),
            [execution_id],
        )
        yield


async def _parent_with_two_children(storage: PostgresStorage) -> None:
    await storage.insert_executions([new("p")], NOW)
    (parent,) = await storage.claim_ready_executions(
        executor_id="x", lease_ms_by_task={"task": 1000}, now_ms=NOW, limit=1
    )
    children = [
        new(f"p.{i}", root_execution_id="p", parent_execution_id="p", index_in_parent=i)
        for i in range(2)
    ]
    wait = ExecutionOutcome(
        "p", parent.lease_token, S.RUNNING, S.WAITING_FOR_CHILDREN, children=children
    )
    assert await storage.record_outcomes([wait], NOW) == [True]


async def test_claims_skip_rows_held_by_another_session(
    schema: str, make_storage: Callable[..., PostgresStorage]
) -> None:
    storage = make_storage()
    await storage.insert_executions([new("a"), new("b")], NOW)
    async with holding(schema, "a"):
        claimed = await asyncio.wait_for(
            storage.claim_ready_executions(
                executor_id="x", lease_ms_by_task={"task": 1000}, now_ms=NOW, limit=2
            ),
            timeout=10,
        )
    assert [r.execution_id for r in claimed] == ["b"]


async def _lock_waiter(application: str) -> bool:
    """Whether a backend of ``application`` waits for a row lock."""
    async with await admin_connection() as conn:
        cur = await conn.execute(
            "SELECT 1 FROM pg_stat_activity WHERE application_name = %s "
            "AND wait_event_type = 'Lock'",
            [application],
        )
        return bool(await cur.fetchall())


async def test_closing_waits_for_a_held_parent_then_counts_on_its_latest_state(
    schema: str, make_storage: Callable[..., PostgresStorage]
) -> None:
    application = f"de_test_close_{uuid.uuid4().hex[:8]}"
    storage = make_storage(application_name=application)
    await _parent_with_two_children(storage)
    await storage.cancel_execution("p.0", now_ms=NOW, error=CANCELLED)  # to be closed
    table = Names(schema, "de_").table
    async with await admin_connection() as conn, conn.transaction():
        # Another session changes the parent meanwhile (as a concurrent closer would).
        await conn.execute(
            sql.SQL(
                "UPDATE {} SET failed_children = failed_children + 5 WHERE execution_id = 'p'"
            ).format(table)
        )
        closing = asyncio.ensure_future(storage.close_finished_executions(now_ms=NOW, limit=10))
        await wait_until(lambda: _lock_waiter(application), message="the closer to wait")
    result = await asyncio.wait_for(closing, 10)
    assert result.closed == 1
    (parent,) = await storage.get_executions(["p"])
    assert (parent.unfinished_children, parent.failed_children) == (1, 6)


@pytest.mark.parametrize("with_others", [False, True])
async def test_an_outcome_closing_a_child_waits_for_its_held_parent(
    schema: str, make_storage: Callable[..., PostgresStorage], with_others: bool
) -> None:
    """The outcome that closes a child locks the parent before the child (as closers do) and
    counts on the parent's latest state; both statements (the finish alone, or with other
    outcomes) do."""
    application = f"de_test_close_{uuid.uuid4().hex[:8]}"
    storage = make_storage(application_name=application)
    await _parent_with_two_children(storage)
    c0, c1 = await storage.claim_ready_executions(
        executor_id="x", lease_ms_by_task={"task": 1000}, now_ms=NOW, limit=2
    )
    outcomes = [
        ExecutionOutcome(c0.execution_id, c0.lease_token, S.RUNNING, S.FAILED, error=CANCELLED)
    ]
    if with_others:  # a retry of the other child takes the general statement
        outcomes.append(
            ExecutionOutcome(c1.execution_id, c1.lease_token, S.RUNNING, S.READY, start_at_ms=NOW)
        )
    table = Names(schema, "de_").table
    async with await admin_connection() as conn, conn.transaction():
        await conn.execute(
            sql.SQL(
                "UPDATE {} SET failed_children = failed_children + 5 WHERE execution_id = 'p'"
            ).format(table)
        )
        recording = asyncio.ensure_future(storage.record_outcomes(outcomes, NOW))
        await wait_until(lambda: _lock_waiter(application), message="the outcome to wait")
        async with await admin_connection() as other:  # the child is not held meanwhile
            lock_child = sql.SQL(
                "SELECT 1 FROM {} WHERE execution_id = 'p.0' FOR UPDATE NOWAIT"
            ).format(table)
            await other.execute(lock_child)
    assert await asyncio.wait_for(recording, 10) == [True] * len(outcomes)
    parent, child = await storage.get_executions(["p", c0.execution_id])
    assert (parent.unfinished_children, parent.failed_children) == (1, 6)
    assert child.is_closed


async def test_closing_does_not_cancel_a_child_that_finished_while_it_waited(
    schema: str, make_storage: Callable[..., PostgresStorage]
) -> None:
    application = f"de_test_close_{uuid.uuid4().hex[:8]}"
    storage = make_storage(application_name=application)
    await _parent_with_two_children(storage)
    p0, p1 = await storage.claim_ready_executions(
        executor_id="x", lease_ms_by_task={"task": 1000}, now_ms=NOW, limit=2
    )
    await storage.cancel_execution("p", now_ms=NOW, error=CANCELLED)
    table = Names(schema, "de_").table
    async with await admin_connection() as conn, conn.transaction():
        # p.1 completes in another session while the closer waits to cancel it.
        await conn.execute(
            sql.SQL(
                "UPDATE {} SET status = 'completed', output = '1', close_state = 'ready', "
                "executor_id = NULL, expires_at = NULL WHERE execution_id = 'p.1'"
            ).format(table)
        )
        closing = asyncio.ensure_future(storage.close_finished_executions(now_ms=NOW, limit=10))
        await wait_until(lambda: _lock_waiter(application), message="the closer to wait")
    result = await asyncio.wait_for(closing, 10)
    assert (result.closed, result.finished_execution_ids) == (1, ["p.0"])
    child0, child1 = await storage.get_executions(["p.0", "p.1"])
    assert (child0.status, child0.stop_requested) == (S.CANCELLED, True)
    assert (child1.status, child1.output) == (S.COMPLETED, "1")
    assert p0.execution_id == "p.0"
    assert p1.execution_id == "p.1"


# -- query plans -----------------------------------------------------------------------------

PLAN_ROWS = 50_000


def _id(i: int) -> str:
    return f"e{i:07d}"


def hot_queries(names: Names) -> dict[str, tuple[str, dict[str, Any]]]:
    """Each hot statement with realistic parameters for the rows of ``fill_executions_sql``
    (row ``i`` is in state bucket ``i % 100``)."""
    queries = Queries.render(names)
    now, channel = PLAN_ROWS + 10, names.channel
    tasks = [f"task-{i}" for i in range(10)]
    running = [_id(i) for i in range(90, PLAN_ROWS, 100)][:100]
    kids = [NewExecution(f"n{i}", "task-1", "{}", now, None, running[0], i) for i in range(10)]
    outcomes = [
        (i, ExecutionOutcome(eid, 1, S.RUNNING, S.COMPLETED, output="1"))
        for i, eid in enumerate(running)
    ]
    outcomes[0] = (
        0,
        ExecutionOutcome(running[0], 1, S.RUNNING, S.WAITING_FOR_CHILDREN, children=kids),
    )
    roots = [
        NewExecution(f"r{i}", "task-2", "{}", now, idempotency_key=f"key-{i * 10}")
        for i in range(100)
    ]
    return {
        "claim_ready_executions": (
            queries.claim_ready,
            {
                "executor_id": "x",
                "task_ids": tasks,
                "leases": [1000] * 10,
                "timeouts": [5000] * 10,
                "now": now,
                "limit": 100,
                "max_suspects": 1,
            },
        ),
        "renew_leases": (
            queries.renew,
            {
                "executor_id": "executor-0",
                "ords": list(range(50)),
                "ids": running[:50],
                "tokens": [0] * 50,
                "now": now,
                "lease": 1000,
            },
        ),
        "record_outcomes": (
            queries.record_outcomes,
            {**outcome_params(outcomes, now), "channel": channel, "notify": True},
        ),
        "insert_executions": (
            queries.insert_roots,
            {**new_execution_params(roots), "now": now, "channel": channel, "notify": True},
        ),
        "claim_parents_to_advance": (
            queries.claim_parents,
            {"task_ids": tasks, "now": now, "lease": 1000, "limit": 100},
        ),
        "close_finished_executions": (
            queries.close,
            {"limit": 100, "now": now, "channel": channel, "notify": True},
        ),
        "cancel_execution": (
            queries.cancel_one,
            {"id": running[0], "now": now, "error": "{}", "channel": channel, "notify": True},
        ),
        "claim_cancellations": (
            queries.claim_cancellations,
            {"executor_id": "executor-1", "limit": 100},
        ),
        "expire_leases": (
            queries.expire,
            {"now": now, "limit": 100, "max_expiries": 10, "channel": channel, "notify": True},
        ),
        "release_executions": (
            queries.release,
            {
                "now": now,
                "channel": channel,
                "notify": True,
                "ords": list(range(50)),
                "ids": running[:50],
                "tokens": [1] * 50,
            },
        ),
        "get_executions": (queries.get, {"ids": json_ids(running[:50])}),
        "find_finished": (queries.find_finished, {"ids": json_ids(running[:50])}),
        "record_outcomes_finish": (
            queries.finish,
            {
                "batch": finish_batch(
                    [
                        (i, ExecutionOutcome(e, 1, S.RUNNING, S.COMPLETED, output="1"))
                        for i, e in enumerate(running[1:51])
                    ]
                ),
                "now": now,
                "channel": channel,
                "notify": True,
            },
        ),
        "record_outcomes_succeed": (
            queries.succeed,
            {
                "batch": succeed_batch(
                    [
                        (
                            i,
                            ExecutionOutcome(
                                e,
                                1,
                                S.RUNNING,
                                S.COMPLETED,
                                output="1",
                                successor=NewExecution(f"s{i}", "task-2", "1", now, e, _id(i), 1),
                            ),
                        )
                        for i, e in enumerate(running[1:51])
                    ]
                ),
                "now": now,
                "channel": channel,
                "notify": True,
            },
        ),
        "insert_plain": (
            queries.insert_plain,
            {
                "batch": insert_batch(
                    [NewExecution(f"p{i}", "task-2", "{}", now) for i in range(100)]
                ),
                "now": now,
                "channel": channel,
                "notify": True,
            },
        ),
    }


# Statements allowed to scan the table when its statistics are stale, in a custom plan (as on
# a pool the caller passes): see queries.py. The storage's own connections' plans may not.
_SCAN_WHEN_STALE = frozenset({"claim_parents_to_advance", "close_finished_executions"})


@pytest.fixture(scope="module", params=["analyzed", "stale_statistics"])
def filled_schema(request: pytest.FixtureRequest) -> Any:
    """A schema whose executions table holds ``PLAN_ROWS`` rows, analyzed; or (stale) 10,000
    rows with the statistics of its first 100, as when the table grows faster than
    autovacuum analyzes it (any benchmark). Made once per variant."""
    stale = request.param == "stale_statistics"
    schema = f"de_test_plans_{uuid.uuid4().hex[:12]}" + ("_stale" if stale else "")

    async def make() -> None:
        names = await create_tables(schema)
        async with await admin_connection() as conn:
            first, rows = 0, PLAN_ROWS
            if stale:
                await conn.execute(
                    sql.SQL("ALTER TABLE {} SET (autovacuum_enabled = false)").format(names.table)
                )
                first, rows = 100, 10_000
                await conn.execute(fill_executions_sql(names.table, first))
                await conn.execute(sql.SQL("ANALYZE {}").format(names.table))
            await conn.execute(fill_executions_sql(names.table, rows, first))
            if not stale:
                await conn.execute(sql.SQL("ANALYZE {}").format(names.table))

    async def drop() -> None:
        async with await admin_connection() as conn:
            await conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))

    asyncio.run(make())
    yield schema
    asyncio.run(drop())


@pytest.mark.parametrize("generic", [False, True], ids=["custom_plan", "generic_plan"])
@pytest.mark.parametrize("name", list(hot_queries(Names("s", "de_"))))
async def test_hot_statements_use_indexes(filled_schema: str, name: str, generic: bool) -> None:
    if filled_schema.endswith("_stale") and name in _SCAN_WHEN_STALE and not generic:
        pytest.skip("may scan a young table with stale statistics (see queries.py)")
    names = Names(filled_schema, "de_")
    query, params = hot_queries(names)[name]
    async with await admin_connection() as conn:
        await conn.execute("SET enable_seqscan = off; SET enable_bitmapscan = off")
        plan, text = await explain(conn, query, params, generic=generic)
    assert not seq_scans_of(plan, names.table_name), f"{name} reads the whole table:\n{text}"


@pytest.mark.parametrize("name", list(hot_queries(Names("s", "de_"))))
async def test_hot_statements_first_run_on_a_small_table_use_indexes_once_it_grew(
    schema: str, name: str
) -> None:
    """The storage's connections keep a statement's generic plan from its first run until the
    table is analyzed again. Planned on a small table (a new installation, or before
    autovacuum came by), a plan must still use the indexes when the table has grown a
    hundredfold: a sequential scan made a batch of 200 outcomes take 7-14 ms instead of 1."""
    names = await create_tables(schema)
    query, params = hot_queries(names)[name]
    async with await admin_connection() as conn:
        await conn.execute(
            sql.SQL("ALTER TABLE {} SET (autovacuum_enabled = false)").format(names.table)
        )
        await conn.execute(fill_executions_sql(names.table, 100))
        await conn.execute(SESSION_SETTINGS)
        execute, values = await prepare(conn, "hot", query, params)
        cur = psycopg.AsyncClientCursor(conn)
        async with conn.transaction(force_rollback=True):
            await cur.execute(execute, values)  # planned now, on 100 rows
        await conn.execute(fill_executions_sql(names.table, 10_000, 100))
        row = await (await cur.execute("EXPLAIN (FORMAT JSON) " + execute, values)).fetchone()
    assert row is not None
    assert not seq_scans_of(row[0], names.table_name), f"{name} reads the whole table: {row[0]}"


async def test_a_claim_planned_on_a_young_table_stops_at_its_limit(schema: str) -> None:
    """The storage's connections keep a statement's generic plan from its first run. A claim
    first run when thousands of rows are ready but the table was never analyzed (a new
    installation, a benchmark) must walk the ready index in order and stop at its limit, not
    read and sort every ready row (the bitmap scan the planner then prefers)."""
    names = await create_tables(schema)
    params = {
        "executor_id": "x",
        "task_ids": ["task"],
        "leases": [1000],
        "timeouts": [5000],
        "now": NOW,
        "limit": 100,
        "max_suspects": 1,
    }
    async with await admin_connection() as conn:
        await conn.execute(
            sql.SQL(
                "INSERT INTO {} (execution_id, task_id, input, status, created_at, updated_at,"
                " start_at) SELECT 'e' || lpad(i::text, 6, '0'), 'task', 'null', 'ready', 0, 0, 0"
                " FROM generate_series(1, 5000) AS i"
            ).format(names.table)
        )
        await conn.execute(SESSION_SETTINGS)
        execute, values = await prepare(conn, "claim", Queries.render(names).claim_ready, params)
        cur = psycopg.AsyncClientCursor(conn)
        async with conn.transaction(force_rollback=True):
            row = await (
                await cur.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + execute, values)
            ).fetchone()
    assert row is not None
    read: dict[str, int] = {}
    for node in plan_nodes(row[0]):
        if (
            node["Node Type"] in ("Index Scan", "Bitmap Heap Scan", "Seq Scan")
            and node.get("Index Name") != names.primary_key
        ):
            relation = node.get("Relation Name")
            read[relation] = read.get(relation, 0) + node["Actual Rows"]
    assert read == {names.table_name: 100}, row[0]  # the suspects' index: none


def test_the_pool_tries_again_soon_after_a_failed_connection() -> None:
    from durable_execution.storage.postgres.connections import new_pool
    from durable_execution.storage.postgres.reconnect import (
        FIRST_RETRY_S,
        MAX_RETRY_S,
        QuickReconnectPool,
        _QuickAttempt,
    )

    pool = new_pool("dbname=nothing", min_size=1, max_size=1, timeout_s=1, connect_kwargs={})
    assert isinstance(pool, QuickReconnectPool)
    attempt = _QuickAttempt(timeout=300)
    delays = []
    for second in range(10):
        attempt.update_delay(float(second))
        delays.append(attempt.delay)
    assert FIRST_RETRY_S * 0.9 <= delays[0] <= FIRST_RETRY_S * 1.1
    assert delays[1] == pytest.approx(2 * delays[0])
    assert max(delays) == MAX_RETRY_S == delays[-1]


async def test_the_pool_hands_out_the_connection_given_back_last() -> None:
    """One caller at a time keeps one connection (and its prepared statements) warm, however
    many the pool holds; the pool shrinks by the connection idle longest."""
    pool = new_pool(POSTGRES_DSN, min_size=3, max_size=3, timeout_s=5, connect_kwargs={})
    await pool.open(wait=True)
    try:
        pids = []
        for _ in range(6):
            async with pool.connection() as conn:
                pids.append(conn.info.backend_pid)
        assert len(set(pids)) == 1, pids
        first, second = await pool.getconn(), await pool.getconn()
        assert pids[0] == first.info.backend_pid != second.info.backend_pid
        await pool.putconn(first)
        await pool.putconn(second)
        async with pool.connection() as conn:  # given back last
            assert conn.info.backend_pid == second.info.backend_pid
        idle = [conn.info.backend_pid for conn in pool._pool]
        assert idle[-1] == second.info.backend_pid
        assert idle[0] not in (first.info.backend_pid, second.info.backend_pid)
    finally:
        await pool.close()


# -- listings (the ExecutionQueries ability) -------------------------------------------------

_LISTINGS = {
    "newest": ExecutionFilter(),
    "status": ExecutionFilter(statuses=(S.FAILED,)),
    "statuses": ExecutionFilter(statuses=(S.FAILED, S.TIMED_OUT)),
    "task": ExecutionFilter(task_ids=("task-3",)),
    "roots": ExecutionFilter(root_only=True),
    "parent": ExecutionFilter(parent_execution_id=_id(400)),
    "ready": ExecutionFilter(statuses=(S.READY,)),
    "completed": ExecutionFilter(statuses=(S.COMPLETED,)),
    "created": ExecutionFilter(
        created_after_ms=1_000, created_before_ms=2_000, id_from=_id(900), id_before=_id(2_001)
    ),
    "finished": ExecutionFilter(finished_before_ms=2_000, id_before=_id(2_001)),
    "attributes": ExecutionFilter(attributes={"tenant": "acme"}),
    "status_task_roots": ExecutionFilter(
        statuses=(S.FAILED,), task_ids=("task-3",), root_only=True
    ),
}


@pytest.mark.parametrize("page", ["first", "next"])
@pytest.mark.parametrize("generic", [False, True], ids=["custom_plan", "generic_plan"])
@pytest.mark.parametrize("name", list(_LISTINGS))
async def test_listings_use_indexes(
    filled_schema: str, name: str, generic: bool, page: str
) -> None:
    """No listing reads the whole table, first page or next (keyset), on an analyzed table
    and on one whose statistics are stale, with the planner settings of the storage's own
    connections (sequential and bitmap scans off): each walks the primary key or an index,
    and stops at the page's end."""
    names = Names(filled_schema, "de_")
    where = _LISTINGS[name]
    after = None if page == "first" else _id(PLAN_ROWS // 2)
    query, params = list_sql(names, where, limit=50, after=after)
    async with await admin_connection() as conn:
        await conn.execute("SET enable_seqscan = off; SET enable_bitmapscan = off")
        plan, text = await explain(conn, query, params, generic=generic)
    assert not seq_scans_of(plan, names.table_name), f"{name} reads the whole table:\n{text}"


@pytest.mark.parametrize("generic", [False, True], ids=["custom_plan", "generic_plan"])
async def test_a_tree_is_read_through_the_children_index(filled_schema: str, generic: bool) -> None:
    names = Names(filled_schema, "de_")
    async with await admin_connection() as conn:
        plan, text = await explain(conn, tree_sql(names), {"id": _id(400)}, generic=generic)
    assert not seq_scans_of(plan, names.table_name), f"the tree reads the whole table:\n{text}"
