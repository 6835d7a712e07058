"""Retry policies on every backend: the back-off waits in storage, retry_on picks the errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from durable_execution import (
    DurableExecutionError,
    DurableExecutor,
    DurableStorage,
    DurableTaskExecutionStatus,
    RetryPolicy,
    TaskContext,
)
from durable_execution.storage.records import ExecutionRecord

from .helpers import wait_until

S = DurableTaskExecutionStatus
MakeExecutor = Callable[..., DurableExecutor]


async def waiting_retry(storage: DurableStorage, execution_id: str, retry: int) -> ExecutionRecord:
    """The execution once it waits, ``ready``, for retry number ``retry``."""

    async def stored() -> ExecutionRecord | None:
        (record,) = await storage.get_executions([execution_id])
        if record.status is S.READY and record.retry_attempts == retry:
            return record
        return None

    found: ExecutionRecord | None = await wait_until(stored, message=f"retry {retry} to wait")
    assert found is not None
    return found


def assert_waits(record: ExecutionRecord, delay_ms: int) -> None:
    # start_at is set from the time the attempt failed, a little before the write.
    waited = record.start_at_ms - record.updated_at_ms
    assert delay_ms - 200 <= waited <= delay_ms, (waited, delay_ms)


async def test_each_retry_waits_in_storage_as_the_policy_says(
    executor: DurableExecutor, storage: DurableStorage
) -> None:
    attempts: list[int] = []

    def always_fails(ctx: TaskContext) -> None:
        attempts.append(ctx.attempt)
        raise ConnectionError(f"attempt {ctx.attempt}")

    policy = RetryPolicy(max_attempts=4, base_delay_ms=300, multiplier=2.0, max_delay_ms=500)
    task = executor.task(id="flaky", timeout_ms=5_000, retry=policy, run=always_fails)
    await executor.start()
    handle = await executor.enqueue_task(task)
    for retry, delay in [(1, 300), (2, 500), (3, 500)]:
        assert_waits(await waiting_retry(storage, handle.execution_id, retry), delay)
    execution = await handle.wait_and_get_execution(timeout=20)
    assert (execution.status, execution.retry_attempts, attempts) == (S.FAILED, 3, [0, 1, 2, 3])
    assert execution.error is not None
    assert execution.error.message == "attempt 3"


async def test_retry_on_types_retries_only_the_listed_errors(executor: DurableExecutor) -> None:
    def run(ctx: TaskContext) -> None:
        raise (ConnectionResetError if ctx.attempt == 0 else KeyError)("boom")

    policy = RetryPolicy(max_attempts=5, base_delay_ms=10, retry_on=(TimeoutError, ConnectionError))
    task = executor.task(id="typed", timeout_ms=5_000, retry=policy, run=run)
    await executor.start()
    execution = await (await executor.enqueue_task(task)).wait_and_get_execution(timeout=20)
    assert (execution.status, execution.retry_attempts) == (S.FAILED, 1)
    assert execution.error is not None
    assert execution.error.exception_type == "builtins.KeyError"


async def test_retry_on_predicate_decides_and_the_attempt_sees_the_previous_error(
    executor: DurableExecutor,
) -> None:
    seen: list[tuple[int, str | None]] = []

    def run(ctx: TaskContext) -> str:
        seen.append((ctx.attempt, ctx.prev_error.message if ctx.prev_error else None))
        if ctx.attempt < 2:
            raise ValueError(f"transient {ctx.attempt}")
        return "done"

    policy = RetryPolicy(
        max_attempts=3, base_delay_ms=10, retry_on=lambda exc: "transient" in str(exc)
    )
    task = executor.task(id="predicate", timeout_ms=5_000, retry=policy, run=run)
    await executor.start()
    execution = await (await executor.enqueue_task(task)).wait_and_get_execution(timeout=20)
    assert (execution.status, execution.output) == (S.COMPLETED, "done")
    assert seen == [(0, None), (1, "transient 0"), (2, "transient 1")]


async def test_a_non_retryable_error_is_not_retried_whatever_retry_on_says(
    executor: DurableExecutor,
) -> None:
    calls: list[int] = []

    def run(ctx: TaskContext) -> None:
        calls.append(ctx.attempt)
        raise DurableExecutionError("fatal", is_retryable=False)

    policy = RetryPolicy(max_attempts=5, base_delay_ms=10, retry_on=DurableExecutionError)
    task = executor.task(id="fatal", timeout_ms=5_000, retry=policy, run=run)
    await executor.start()
    execution = await (await executor.enqueue_task(task)).wait_and_get_execution(timeout=20)
    assert (execution.status, execution.retry_attempts, calls) == (S.FAILED, 0, [0])


async def test_a_back_off_holds_no_slot(
    make_executor: MakeExecutor, storage: DurableStorage
) -> None:
    executor = make_executor(max_concurrent_task_executions=1)

    def fails(ctx: TaskContext) -> None:
        raise ConnectionError("later")

    slow = executor.task(
        id="slow_retry", timeout_ms=5_000, retry=RetryPolicy(base_delay_ms=60_000), run=fails
    )
    quick = executor.task(id="quick", timeout_ms=5_000, run=lambda ctx: "quick")
    await executor.start()
    waiting = await executor.enqueue_task(slow)
    assert_waits(await waiting_retry(storage, waiting.execution_id, 1), 60_000)
    execution = await (await executor.enqueue_task(quick)).wait_and_get_execution(timeout=20)
    assert execution.status is S.COMPLETED
    (record,) = await storage.get_executions([waiting.execution_id])
    assert (record.status, record.retry_attempts) == (S.READY, 1)


def define_resumable(executor: DurableExecutor, calls: list[tuple[int, str | None]]) -> Any:
    def run(ctx: TaskContext, input: str) -> str:
        calls.append((ctx.attempt, ctx.prev_error.message if ctx.prev_error else None))
        if ctx.attempt == 0:
            raise ConnectionError("first attempt lost its connection")
        return f"{input} on attempt {ctx.attempt}"

    policy = RetryPolicy(max_attempts=2, base_delay_ms=400)
    return executor.task(id="resumable", timeout_ms=5_000, retry=policy, run=run)


async def test_an_executor_stopped_during_a_back_off_loses_nothing(
    make_executor: MakeExecutor,
    storage: DurableStorage,
    storage_factory: Callable[[], Awaitable[DurableStorage]],
) -> None:
    first_calls: list[tuple[int, str | None]] = []
    first = make_executor()
    task = define_resumable(first, first_calls)
    await first.start()
    handle = await first.enqueue_task(task, "job")
    waiting = await waiting_retry(storage, handle.execution_id, 1)
    await first.shutdown()  # nothing of the back-off lives in the executor

    later_calls: list[tuple[int, str | None]] = []
    second = make_executor(await storage_factory())
    again = define_resumable(second, later_calls)
    await second.start()
    later = await second.get_task_handle(again, handle.execution_id)
    execution = await later.wait_and_get_execution(timeout=20)
    assert (execution.status, execution.output) == (S.COMPLETED, "job on attempt 1")
    assert first_calls == [(0, None)]
    assert later_calls == [(1, "first attempt lost its connection")]
    (record,) = await storage.get_executions([handle.execution_id])
    assert record.started_at_ms is not None
    assert record.started_at_ms >= waiting.start_at_ms - 50  # not before its back-off ended


async def test_a_completion_task_retries_by_its_policy(executor: DurableExecutor) -> None:
    attempts: list[int] = []

    def complete(ctx: TaskContext, value: Any) -> str:
        attempts.append(ctx.attempt)
        if ctx.attempt < 2:
            raise ValueError("not yet")
        return f"{value.output} done"

    parent = executor.parent_task(
        id="parent",
        timeout_ms=5_000,
        run_parent=lambda ctx: {"output": "parent"},
        on_run_and_children_complete={
            "id": "parent_done",
            "timeout_ms": 5_000,
            "retry": RetryPolicy(max_attempts=3, base_delay_ms=20, retry_on=ValueError),
            "run": complete,
        },
    )
    await executor.start()
    execution = await (await executor.enqueue_task(parent)).wait_and_get_execution(timeout=20)
    assert (execution.status, execution.output, attempts) == (S.COMPLETED, "parent done", [0, 1, 2])


async def test_a_parent_retries_its_run_by_its_policy(executor: DurableExecutor) -> None:
    def run_parent(ctx: TaskContext) -> dict[str, Any]:
        if ctx.attempt == 0:
            raise TimeoutError("slow upstream")
        return {"output": ctx.attempt}

    parent = executor.parent_task(
        id="parent",
        timeout_ms=5_000,
        retry=RetryPolicy(max_attempts=2, base_delay_ms=10, retry_on=TimeoutError),
        run_parent=run_parent,
    )
    await executor.start()
    execution = await (await executor.enqueue_task(parent)).wait_and_get_execution(timeout=20)
    assert (execution.status, execution.output) == (
        S.COMPLETED,
        {"output": 1, "children_outputs": []},
    )
