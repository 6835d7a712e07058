"""Running tasks: validation, retries, timeouts, delays, sizes, handles, closure."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from pydantic import TypeAdapter

from durable_execution import (
    DataTooLargeError,
    DurableExecutionError,
    DurableExecutionErrorType,
    DurableExecutionNotFoundError,
    DurableExecutor,
    DurableTaskExecutionStatus,
    IdempotencyConflictError,
    SerializationError,
    TaskContext,
)

from .helpers import wait_until

S = DurableTaskExecutionStatus


async def finish(executor: DurableExecutor, task: Any, input: Any = None) -> Any:
    handle = await executor.enqueue_task(task, input)
    return await handle.wait_and_get_execution(timeout=20)


async def test_invalid_input_fails_without_running_or_retrying(executor: DurableExecutor) -> None:
    calls: list[Any] = []

    def reject(input: Any) -> Any:
        raise ValueError("name must be world")

    task = executor.validate_input(reject).task(
        id="a", timeout_ms=1000, max_retry_attempts=3, run=lambda ctx, i: calls.append(i)
    )
    await executor.start()
    execution = await finish(executor, task, {"name": "moon"})
    assert execution.status is S.FAILED
    assert execution.retry_attempts == 0
    assert execution.error.is_retryable is False
    assert execution.error.message == "Invalid input to task a: name must be world"
    assert calls == []


async def test_async_validator_and_schema_transforms_reach_run(executor: DurableExecutor) -> None:
    async def upper(input: str) -> str:
        await asyncio.sleep(0)
        return input.upper()

    shout = executor.validate_input(upper).task(id="shout", timeout_ms=1000, run=lambda c, i: i)
    to_int = executor.input_schema(TypeAdapter(int)).task(
        id="to_int", timeout_ms=1000, run=lambda ctx, i: [type(i).__name__, i + 1]
    )

    class Point(msgspec.Struct):
        x: int
        y: int

    point = executor.input_schema(Point).task(
        id="point", timeout_ms=1000, run=lambda ctx, p: [type(p).__name__, p.x + p.y]
    )
    await executor.start()
    assert (await finish(executor, shout, "hi")).output == "HI"
    assert (await finish(executor, to_int, "41")).output == ["int", 42]
    assert (await finish(executor, point, {"x": 1, "y": 2})).output == ["Point", 3]
    bad = await finish(executor, point, {"x": "one"})
    assert bad.status is S.FAILED
    assert bad.error.message.startswith("Invalid input to task point:")


async def test_plain_exceptions_are_retried_and_the_last_error_kept(
    executor: DurableExecutor,
) -> None:
    seen: list[tuple[int, str | None]] = []

    def run(ctx: TaskContext, input: None) -> None:
        seen.append((ctx.attempt, ctx.prev_error.message if ctx.prev_error else None))
        raise RuntimeError(f"boom {ctx.attempt}")

    task = executor.task(id="a", timeout_ms=1000, max_retry_attempts=2, run=run)
    await executor.start()
    execution = await finish(executor, task)
    assert execution.status is S.FAILED
    assert execution.retry_attempts == 2
    assert execution.error.message == "boom 2"
    assert execution.error.is_retryable is True
    assert execution.error.exception_type == "builtins.RuntimeError"
    assert seen == [(0, None), (1, "boom 0"), (2, "boom 1")]


async def test_non_retryable_error_stops_at_once(executor: DurableExecutor) -> None:
    calls = 0

    def run(ctx: TaskContext, input: None) -> None:
        nonlocal calls
        calls += 1
        raise DurableExecutionError("fatal", is_retryable=False)

    task = executor.task(id="a", timeout_ms=1000, max_retry_attempts=5, run=run)
    await executor.start()
    execution = await finish(executor, task)
    assert (execution.status, execution.retry_attempts, calls) == (S.FAILED, 0, 1)
    assert execution.error.message == "fatal"


async def test_async_timeout(executor: DurableExecutor) -> None:
    cancelled = asyncio.Event()

    async def slow(ctx: TaskContext, input: None) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task = executor.task(id="slow", timeout_ms=50, run=slow)
    await executor.start()
    execution = await finish(executor, task)
    assert execution.status is S.TIMED_OUT
    assert execution.error.error_type is DurableExecutionErrorType.TIMED_OUT
    await asyncio.wait_for(cancelled.wait(), 5)


async def test_sync_timeout_ignores_the_late_return(executor: DurableExecutor) -> None:
    returned = threading.Event()
    release = threading.Event()

    def slow(ctx: TaskContext, input: None) -> str:
        release.wait(10)
        returned.set()
        return "late"

    task = executor.task(id="slow", timeout_ms=50, run=slow)
    await executor.start()
    handle = await executor.enqueue_task(task)
    execution = await handle.wait_and_get_execution(timeout=10)
    assert execution.status is S.TIMED_OUT
    release.set()
    await wait_until(returned.is_set, message="the abandoned thread to return")
    await executor.shutdown()  # drains every pending write
    again = await handle.get_execution()
    assert (again.status, again.output) == (S.TIMED_OUT, None)


async def test_timeout_is_retried_then_final(executor: DurableExecutor) -> None:
    attempts: list[int] = []

    async def slow(ctx: TaskContext, input: None) -> None:
        attempts.append(ctx.attempt)
        await asyncio.sleep(30)

    task = executor.task(id="slow", timeout_ms=30, max_retry_attempts=2, run=slow)
    await executor.start()
    execution = await finish(executor, task)
    assert (execution.status, execution.retry_attempts, attempts) == (S.TIMED_OUT, 2, [0, 1, 2])


async def test_sync_task_can_poll_cancellation_on_timeout(executor: DurableExecutor) -> None:
    noticed = threading.Event()

    def cooperative(ctx: TaskContext, input: None) -> None:
        while not ctx.is_cancelled():
            time.sleep(0.002)
        noticed.set()

    task = executor.task(id="coop", timeout_ms=50, run=cooperative)
    await executor.start()
    assert (await finish(executor, task)).status is S.TIMED_OUT
    await wait_until(noticed.is_set, message="the sync task to see its cancellation")


async def test_sleep_before_each_attempt(executor: DurableExecutor) -> None:
    starts: list[float] = []

    def run(ctx: TaskContext, input: None) -> str:
        starts.append(time.monotonic())
        if ctx.attempt < 2:
            raise RuntimeError("again")
        return "done"

    task = executor.task(
        id="a", timeout_ms=1000, max_retry_attempts=2, sleep_ms_before_attempt=150, run=run
    )
    await executor.start()
    enqueued = time.monotonic()
    execution = await finish(executor, task)
    assert execution.status is S.COMPLETED
    assert execution.started_at - execution.created_at >= _ms(150 * 3 - 20)
    gaps = [b - a for a, b in zip([enqueued, *starts], starts, strict=False)]
    assert len(gaps) == 3
    assert all(gap >= 0.14 for gap in gaps), gaps


def _ms(ms: int) -> dt.timedelta:
    return dt.timedelta(milliseconds=ms)


async def test_input_limits_are_enforced_at_enqueue_and_nothing_is_stored(
    make_executor: Callable[..., DurableExecutor],
) -> None:
    executor = make_executor(max_serialized_input_data_size=100)
    runs: list[Any] = []
    task = executor.task(id="a", timeout_ms=1000, run=lambda ctx, i: runs.append(i))
    await executor.start()
    with pytest.raises(DataTooLargeError, match="Input of task a is too large"):
        await executor.enqueue_task(task, "x" * 200)
    with pytest.raises(SerializationError, match="not serializable"):
        await executor.enqueue_task(task, object())
    assert (await finish(executor, task, "small")).status is S.COMPLETED
    assert runs == ["small"]


async def test_bad_outputs_fail_with_a_clear_message(
    make_executor: Callable[..., DurableExecutor],
) -> None:
    executor = make_executor(max_serialized_output_data_size=100)
    big = executor.task(id="big", timeout_ms=1000, max_retry_attempts=2, run=lambda c, i: "y" * 500)
    odd = executor.task(id="odd", timeout_ms=1000, run=lambda ctx, i: object())
    await executor.start()
    too_big = await finish(executor, big)
    assert (too_big.status, too_big.retry_attempts) == (S.FAILED, 0)
    assert "Output of task big is too large" in too_big.error.message
    unserializable = await finish(executor, odd)
    assert unserializable.status is S.FAILED
    assert "Output of task odd is not serializable" in unserializable.error.message


async def test_finished_executions_are_closed(executor: DurableExecutor) -> None:
    ok = executor.task(id="ok", timeout_ms=1000, run=lambda ctx, i: 1)
    await executor.start()
    handle = await executor.enqueue_task(ok)
    await handle.wait_and_get_execution(timeout=10)

    async def closed() -> bool:
        return (await handle.get_execution()).is_closed

    await wait_until(closed, message="closure")


async def test_enqueue_checks_the_task(
    make_executor: Callable[..., DurableExecutor],
) -> None:
    executor = make_executor()
    other = make_executor()
    foreign = other.task(id="foreign", timeout_ms=1000, run=lambda ctx, i: i)
    parent = executor.parent_task(
        id="p",
        timeout_ms=1000,
        run_parent=lambda ctx, i: {"output": i},
        on_run_and_children_complete={"id": "p_done", "timeout_ms": 1000, "run": lambda c, v: v},
    )
    with pytest.raises(ValueError, match="not registered on this executor"):
        await executor.enqueue_task(foreign, 1)
    with pytest.raises(ValueError, match="Expected a DurableTask"):
        await executor.enqueue_task("foreign", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="enqueue its parent"):
        await executor.enqueue_task(parent.completion, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="delay_ms"):
        await executor.enqueue_task(parent, 1, delay_ms=-1)


async def test_handles_reattach_and_unknown_ids_are_not_found(executor: DurableExecutor) -> None:
    task = executor.task(id="a", timeout_ms=1000, run=lambda ctx, i: i)
    other = executor.task(id="b", timeout_ms=1000, run=lambda ctx, i: i)
    await executor.start()
    handle = await executor.enqueue_task(task, 3)
    again = await executor.get_task_handle(task, handle.execution_id)
    assert (await again.wait_and_get_execution(timeout=10)).output == 3
    with pytest.raises(DurableExecutionNotFoundError):
        await executor.get_task_handle(task, "te_nosuch")
    with pytest.raises(DurableExecutionNotFoundError):
        await executor.get_task_handle(other, handle.execution_id)


async def test_wait_with_timeout_raises_and_leaves_the_execution_alone(
    executor: DurableExecutor,
) -> None:
    release = asyncio.Event()

    async def blocked(ctx: TaskContext, input: None) -> str:
        await release.wait()
        return "released"

    task = executor.task(id="blocked", timeout_ms=10_000, run=blocked)
    await executor.start()
    handle = await executor.enqueue_task(task)
    with pytest.raises(TimeoutError):
        await handle.wait_and_get_execution(timeout=0.05)
    release.set()
    assert (await handle.wait_and_get_execution(timeout=10)).output == "released"


async def test_batch_enqueue_priorities_delays_and_idempotency_keys(
    make_executor: Callable[..., DurableExecutor],
) -> None:
    executor = make_executor(max_concurrent_task_executions=1)
    order: list[str] = []
    task = executor.task(id="a", timeout_ms=1000, run=lambda ctx, i: order.append(i))
    low = await executor.enqueue_task(task, "low", priority=0)
    high = await executor.enqueue_task(task, "high", priority=10)
    late = await executor.enqueue_task(task, "late", delay_ms=300)
    first = await executor.enqueue_task(task, "keyed", idempotency_key="k1")
    second = await executor.enqueue_task(task, "keyed", idempotency_key="k1")
    assert second.execution_id == first.execution_id
    with pytest.raises(IdempotencyConflictError):  # the same key for other work
        await executor.enqueue_task(task, "keyed again", idempotency_key="k1")
    batch = await executor.enqueue_tasks([(task, "b1"), (task, "b2")])
    await executor.start()
    for handle in (low, high, late, first, *batch):
        assert (await handle.wait_and_get_execution(timeout=10)).status is S.COMPLETED
    assert order.index("high") < order.index("low")
    assert order[-1] == "late"
    assert sorted(order) == sorted(["low", "high", "late", "keyed", "b1", "b2"])
    late_execution = await late.get_execution()
    assert late_execution.started_at - late_execution.created_at >= _ms(280)


async def test_waiting_for_many_executions_at_once(executor: DurableExecutor) -> None:
    release = asyncio.Event()

    async def gated(ctx: TaskContext, input: int) -> int:
        if input == 0:
            await release.wait()
        return input * 2

    task = executor.task(id="gated", timeout_ms=10_000, run=gated)
    await executor.start()
    handles = await executor.enqueue_tasks([(task, n) for n in range(50)])
    with pytest.raises(TimeoutError):
        await executor.wait_until_finished(handles, timeout=0.05)
    release.set()
    executions = await executor.wait_and_get_executions(handles, timeout=20)
    assert [e.output for e in executions] == [n * 2 for n in range(50)]
    assert [e.execution_id for e in executions] == [h.execution_id for h in handles]
    assert await executor.wait_and_get_executions([]) == []


async def test_an_idempotency_key_reused_for_other_work_is_a_conflict(
    executor: DurableExecutor,
) -> None:
    task = executor.task(id="a", timeout_ms=1000, run=lambda ctx, i: i)
    other = executor.task(id="b", timeout_ms=1000, run=lambda ctx, i: i)
    first = await executor.enqueue_task(task, {"x": 1, "y": 2}, idempotency_key="order-7")
    # The same input (a dict in another key order is the same dict): the same execution.
    again = await executor.enqueue_task(task, {"y": 2, "x": 1}, idempotency_key="order-7")
    assert again.execution_id == first.execution_id
    with pytest.raises(IdempotencyConflictError) as caught:
        await executor.enqueue_task(task, {"x": 1, "y": 3}, idempotency_key="order-7")
    assert str(caught.value) == (
        f"Idempotency key 'order-7' of task a is already used by execution "
        f"{first.execution_id} with another input: use another key for other work"
    )
    assert (caught.value.idempotency_key, caught.value.execution_id) == (
        "order-7",
        first.execution_id,
    )
    with pytest.raises(IdempotencyConflictError, match=r"by execution .* of task a: use another"):
        await executor.enqueue_task(other, {"x": 1, "y": 2}, idempotency_key="order-7")
    await executor.start()
    assert (await first.wait_and_get_execution(timeout=10)).output == {"x": 1, "y": 2}
