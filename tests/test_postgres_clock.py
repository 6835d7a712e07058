"""PostgreSQL on the database's clock: executors whose clocks are skewed by ±30 s lease, time
out and delay on the server's time, so that none takes another's execution over early."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from durable_execution import DurableExecutor, DurableTaskExecutionStatus, TaskContext
from durable_execution.executor import executor as executor_module
from durable_execution.storage.postgres import PostgresStorage
from durable_execution.storage.records import NewExecution

from .backends import BACKENDS
from .helpers import wait_until

pytestmark = pytest.mark.skipif("postgres" not in BACKENDS, reason="PostgreSQL tests are off")

S = DurableTaskExecutionStatus
SKEW_MS = 30_000


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    from .pg import fresh_schema

    async with fresh_schema("clock") as name:
        yield name


@pytest.fixture
async def storages(schema: str) -> AsyncIterator[Callable[..., PostgresStorage]]:
    from .pg import storage_in

    made: list[PostgresStorage] = []

    def make(clock: str = "database") -> PostgresStorage:
        storage = storage_in(schema, clock=clock)
        made.append(storage)
        return storage

    yield make
    for storage in made:
        await storage.close()


async def server_ms(storage: PostgresStorage) -> int:
    from .pg import admin_connection

    async with await admin_connection() as conn:
        cursor = await conn.execute("SELECT floor(extract(epoch from clock_timestamp()) * 1000)")
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


def skewed(offset_ms: int) -> Callable[[], int]:
    return lambda: int(time.time() * 1000) + offset_ms


@pytest.mark.parametrize("offset_ms", [SKEW_MS, -SKEW_MS])
async def test_claims_and_delays_use_the_servers_time(
    storages: Callable[..., PostgresStorage], offset_ms: int
) -> None:
    storage = storages()
    await storage.initialize()
    now = skewed(offset_ms)()
    delayed = NewExecution("te_delayed", "t", "null", now + 500)
    due = NewExecution("te_due", "t", "null", now)
    await storage.insert_executions([delayed, due], now)
    before = await server_ms(storage)
    claimed = await storage.claim_ready_executions(
        executor_id="skewed",
        lease_ms_by_task={"t": 60_000},
        now_ms=skewed(offset_ms)(),
        limit=10,
        lease_ms=2_000,
    )
    after = await server_ms(storage)
    # Only the due one: the delayed one waits its 500 ms on the server's clock, whatever the
    # claimer's clock says (30 s ahead, it would be due; 30 s behind, the due one would not).
    assert [r.execution_id for r in claimed] == ["te_due"]
    (record,) = claimed
    assert record.started_at_ms is not None
    assert record.expires_at_ms is not None
    assert before - 50 <= record.started_at_ms <= after + 50
    assert record.expires_at_ms - record.started_at_ms == 2_000
    (stored,) = await storage.get_executions(["te_delayed"])
    assert abs(stored.start_at_ms - (record.started_at_ms + 500)) < 1_000


async def run_beside_a_fast_clock(
    storages: Callable[..., PostgresStorage], clock: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[int], Any]:
    """A long run on an executor whose clock is 30 s behind, while an executor whose clock is
    30 s ahead expires leases; returns the runs and the execution."""
    runs: list[int] = []

    async def long(ctx: TaskContext, input: None) -> str:
        runs.append(1)
        await asyncio.sleep(2.5)
        return "done"

    monkeypatch.setattr(executor_module, "_now_ms", skewed(-SKEW_MS))
    slow = DurableExecutor(
        storages(clock), lease_ms=1_000, expire_leeway_ms=0, background_process_interval_ms=20
    )
    task = slow.task(id="long", timeout_ms=60_000, run=long)
    monkeypatch.setattr(executor_module, "_now_ms", skewed(SKEW_MS))
    fast = DurableExecutor(storages(clock), background_process_interval_ms=20)
    async with slow, fast:
        handle = await slow.enqueue_task(task)
        if clock == "database":
            execution = await handle.wait_and_get_execution(timeout=30)
        else:  # taken over early; the slow clock then sees it due only 60 s later: stop here

            async def expired() -> Any:
                execution = await handle.get_execution()
                return execution if execution.lease_expiries else None

            execution = await wait_until(expired, timeout=10, message="an early takeover")
    return runs, execution


async def test_a_fast_clock_does_not_take_a_lease_over_early(
    storages: Callable[..., PostgresStorage], monkeypatch: pytest.MonkeyPatch
) -> None:
    runs, execution = await run_beside_a_fast_clock(storages, "database", monkeypatch)
    assert (execution.status, execution.output, execution.lease_expiries) == (
        S.COMPLETED,
        "done",
        0,
    )
    assert runs == [1]


async def test_on_the_executors_clocks_the_fast_one_takes_it_over(
    storages: Callable[..., PostgresStorage], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: with each executor's own clock, the same skew expires the lease at once."""
    runs, execution = await run_beside_a_fast_clock(storages, "executor", monkeypatch)
    assert execution.lease_expiries >= 1
    assert runs == [1]  # stopped: its lease taken back at once, by a clock 60 s ahead


async def test_the_clock_option(storages: Callable[..., PostgresStorage]) -> None:
    from .pg import POSTGRES_DSN

    assert storages().clock == "database"
    url = POSTGRES_DSN + ("&" if "?" in POSTGRES_DSN else "?") + "clock=executor"
    assert PostgresStorage.from_url(url).clock == "executor"
    with pytest.raises(ValueError, match="Invalid clock='local'"):
        PostgresStorage(POSTGRES_DSN, clock="local")  # type: ignore[arg-type]
    await wait_until(lambda: True)
