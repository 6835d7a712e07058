"""Every numeric option and enqueue argument has an upper bound, and one bad task cannot
break the claims of the others."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from durable_execution import DurableExecutor, DurableTaskExecutionStatus
from durable_execution.checks import (
    MAX_DURATION_MS,
    MAX_PRIORITY,
    MAX_RETRY_ATTEMPTS,
    MIN_PRIORITY,
)
from durable_execution.storage.int_range import INT64_MAX
from durable_execution.storage.memory import InMemoryStorage
from durable_execution.storage.protocol import DurableStorage
from durable_execution.storage.sqlite import SQLiteStorage

S = DurableTaskExecutionStatus


def test_durations_keep_every_stored_time_far_inside_64_bits() -> None:
    # now (until the year 2286) + delay + pause before the attempt + timeout + leeway
    assert 10**13 + 4 * MAX_DURATION_MS < INT64_MAX // 100_000


@pytest.mark.parametrize(
    ("option", "value", "bound"),
    [
        ("timeout_ms", 10**20, f"between 1 and {MAX_DURATION_MS}"),
        ("timeout_ms", MAX_DURATION_MS + 1, f"between 1 and {MAX_DURATION_MS}"),
        ("sleep_ms_before_attempt", 10**20, f"between 0 and {MAX_DURATION_MS}"),
        ("max_retry_attempts", MAX_RETRY_ATTEMPTS + 1, f"between 0 and {MAX_RETRY_ATTEMPTS}"),
    ],
)
def test_task_options_have_upper_bounds(option: str, value: int, bound: str) -> None:
    executor = DurableExecutor(InMemoryStorage())
    options: dict[str, Any] = {"timeout_ms": 1_000, option: value}
    with pytest.raises(
        ValueError,
        match=f"^Invalid option {option}={value} for task 'a': expected an integer {bound}$",
    ):
        executor.task(id="a", run=lambda ctx: None, **options)
    executor.task(id="a", run=lambda ctx: None, **{**options, option: int(bound.split()[-1])})


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("delay_ms", MAX_DURATION_MS + 1),
        ("delay_ms", 10**20),
        ("priority", MAX_PRIORITY + 1),
        ("priority", MIN_PRIORITY - 1),
        ("priority", 2**70),
    ],
)
async def test_enqueue_arguments_have_bounds_and_store_nothing_beyond(
    make_executor: Callable[..., DurableExecutor],
    storage: DurableStorage,
    argument: str,
    value: int,
) -> None:
    executor = make_executor()
    task = executor.task(id="a", timeout_ms=1_000, run=lambda ctx, x: x)
    await executor.start()
    with pytest.raises(
        ValueError, match=f"^Invalid option {argument}={value}: expected an integer"
    ):
        await executor.enqueue_task(task, 1, **{argument: value})
    with pytest.raises(ValueError, match=f"^Invalid option {argument}={value}"):
        await executor.enqueue_tasks([(task, 1)], **{argument: value})
    handle = await executor.enqueue_task(task, 1, priority=MAX_PRIORITY)
    assert (await handle.wait_and_get_execution(timeout=10)).output == 1


async def test_a_task_whose_claim_cannot_be_computed_leaves_the_others_claiming(
    make_executor: Callable[..., DurableExecutor], caplog: pytest.LogCaptureFixture
) -> None:
    """Options are checked at definition; one changed afterwards (here a timeout beyond any
    lease) used to make every claim of the executor fail, for all its tasks. It is left out
    of the claims instead, with an error logged."""
    executor = make_executor()
    good = executor.task(id="good", timeout_ms=1_000, run=lambda ctx, x: x * 2)
    bad = executor.task(id="bad", timeout_ms=1_000, run=lambda ctx, x: x)
    object.__setattr__(bad.options, "timeout_ms", 10**20)
    with caplog.at_level(logging.ERROR, logger="durable_execution"):
        executor._engine.tasks_changed()  # what a definition does
    assert "task bad cannot be claimed by this executor" in caplog.text
    # Stored before the start: claimed from the storage, not dispatched by the enqueue.
    bad_handle = await executor.enqueue_task(bad, 1)
    handles = [await executor.enqueue_task(good, n) for n in range(5)]
    await executor.start()
    done = await executor.wait_and_get_executions(handles, timeout=20)
    assert [e.output for e in done] == [0, 2, 4, 6, 8]
    assert (await bad_handle.get_execution()).status is S.READY


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: SQLiteStorage(":memory:", busy_timeout_ms=3_600_001), "busy_timeout_ms"),
        (lambda: SQLiteStorage(":memory:", busy_timeout_ms=2**70), "busy_timeout_ms"),
    ],
)
def test_sqlite_options_have_upper_bounds(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=f"^Invalid option {message}="):
        make()


def test_postgres_options_have_upper_bounds() -> None:
    pytest.importorskip("psycopg")
    from durable_execution.storage.postgres import PostgresStorage

    dsn = "postgresql://nobody@127.0.0.1:1/none"
    for options, name in [
        ({"max_pool_size": 1_001}, "max_pool_size"),
        ({"min_pool_size": 1_001, "max_pool_size": 1_001}, "min_pool_size"),
        ({"notify_interval_ms": 60_001}, "notify_interval_ms"),
        ({"pool_timeout_s": 3_601}, "pool_timeout_s"),
        ({"pool_timeout_s": float("nan")}, "pool_timeout_s"),
        ({"pool_timeout_s": True}, "pool_timeout_s"),
    ]:
        with pytest.raises(ValueError, match=f"^Invalid option {name}="):
            PostgresStorage(dsn, **options)
    PostgresStorage(dsn, max_pool_size=1_000, notify_interval_ms=60_000, pool_timeout_s=3_600)
