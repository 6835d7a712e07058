"""Middleware: the order of the hooks, what they see (outcomes and exceptions), what they may
change (attributes, results, failures), on every backend."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from durable_execution import (
    DurableExecutionError,
    DurableExecutor,
    DurableTaskExecutionStatus,
    TaskContext,
)
from durable_execution.handle import DurableTaskHandle
from durable_execution.middleware import (
    Attempt,
    AttemptNext,
    BaseMiddleware,
    EnqueueNext,
    EnqueueRequest,
    Middleware,
)

from .helpers import spy_inserts

S = DurableTaskExecutionStatus
Events = list[tuple[Any, ...]]


class Recorder(BaseMiddleware):
    """Records what it sees, before and after calling on, into a list shared by the test."""

    def __init__(self, name: str, events: Events) -> None:
        self.name = name
        self.events = events

    async def enqueue(
        self, requests: Sequence[EnqueueRequest], call_next: EnqueueNext
    ) -> list[DurableTaskHandle[Any]]:
        self.events.append((self.name, "enqueue", [(r.task_id, r.input) for r in requests]))
        handles = await call_next(requests)
        self.events.append((self.name, "enqueued", len(handles)))
        return handles

    async def attempt(self, attempt: Attempt, call_next: AttemptNext) -> Any:
        self.events.append((self.name, "attempt", attempt.task_id, attempt.ctx.attempt))
        try:
            result = await call_next()
        except Exception as exc:
            self.events.append((self.name, "raised", attempt.task_id, str(exc)))
            raise
        self.events.append((self.name, "returned", attempt.task_id, result))
        return result


def flaky_once() -> Callable[[TaskContext, int], int]:
    def run(ctx: TaskContext, input: int) -> int:
        if ctx.attempt == 0:
            raise RuntimeError("first attempt fails")
        return input * 2

    return run


async def test_hooks_nest_in_order_and_see_results_and_exceptions(
    make_executor: Callable[..., DurableExecutor],
) -> None:
    events: Events = []
    executor = make_executor(middleware=[Recorder("outer", events), Recorder("inner", events)])
    task = executor.task(id="double", timeout_ms=5000, max_retry_attempts=1, run=flaky_once())
    await executor.start()
    handle = await executor.enqueue_task(task, 21)
    execution = await handle.wait_and_get_execution(timeout=10)
    assert (execution.status, execution.output) == (S.COMPLETED, 42)
    assert events == [
        ("outer", "enqueue", [("double", 21)]),
        ("inner", "enqueue", [("double", 21)]),
        ("inner", "enqueued", 1),
        ("outer", "enqueued", 1),
        ("outer", "attempt", "double", 0),
        ("inner", "attempt", "double", 0),
        ("inner", "raised", "double", "first attempt fails"),
        ("outer", "raised", "double", "first attempt fails"),
        ("outer", "attempt", "double", 1),
        ("inner", "attempt", "double", 1),
        ("inner", "returned", "double", 42),
        ("outer", "returned", "double", 42),
    ]


class Tenancy(BaseMiddleware):
    """Adds a tenant to every enqueue, and an attempt marker to the children of parents."""

    async def enqueue(
        self, requests: Sequence[EnqueueRequest], call_next: EnqueueNext
    ) -> list[DurableTaskHandle[Any]]:
        return await call_next([r.with_attributes({"tenant": "acme"}) for r in requests])

    async def attempt(self, attempt: Attempt, call_next: AttemptNext) -> Any:
        attempt.child_attributes["made_by"] = attempt.ctx.execution_id
        return await call_next()


async def test_middleware_adds_attributes_to_enqueues_and_to_the_children_of_an_attempt(
    make_executor: Callable[..., DurableExecutor],
) -> None:
    executor = make_executor(middleware=[Tenancy()])
    child = executor.task(id="child", timeout_ms=5000, run=lambda ctx, i: dict(ctx.attributes))
    parent = executor.parent_task(
        id="parent",
        timeout_ms=5000,
        run_parent=lambda ctx, i: {
            "output": None,
            "children": [
                {"task": child, "input": 0, "attributes": {"made_by": "me"}},
                {"task": child, "input": 1},
            ],
        },
    )
    await executor.start()
    handle = await executor.enqueue_task(parent, None, attributes={"request": 7})
    execution = await handle.wait_and_get_execution(timeout=10)
    assert execution.attributes == {"request": 7, "tenant": "acme"}
    outputs = [c["output"] for c in execution.output["children_outputs"]]
    made_by = execution.execution_id
    assert outputs == [
        {"request": 7, "tenant": "acme", "made_by": "me"},  # the child's own attribute wins
        {"request": 7, "tenant": "acme", "made_by": made_by},
    ]


class Refuse(BaseMiddleware):
    async def enqueue(
        self, requests: Sequence[EnqueueRequest], call_next: EnqueueNext
    ) -> list[DurableTaskHandle[Any]]:
        raise PermissionError("not today")


async def test_an_enqueue_refused_by_middleware_stores_nothing(
    make_executor: Callable[..., DurableExecutor],
) -> None:
    executor = make_executor(middleware=[Refuse()])
    task = executor.task(id="t", timeout_ms=5000, run=lambda ctx, i: i)
    inserted = spy_inserts(executor.storage)
    await executor.start()
    with pytest.raises(PermissionError, match="not today"):
        await executor.enqueue_tasks([(task, 1), (task, 2)])
    assert inserted == []


class Fail(BaseMiddleware):
    def __init__(self, error: Exception) -> None:
        self.error = error

    async def attempt(self, attempt: Attempt, call_next: AttemptNext) -> Any:
        await call_next()
        raise self.error


@pytest.mark.parametrize(
    ("error", "status", "attempts"),
    [
        (RuntimeError("audit failed"), S.FAILED, 3),
        (DurableExecutionError("audit refused", is_retryable=False), S.FAILED, 1),
    ],
)
async def test_an_exception_raised_by_middleware_is_the_attempts_failure(
    make_executor: Callable[..., DurableExecutor],
    error: Exception,
    status: S,
    attempts: int,
) -> None:
    runs: list[int] = []
    executor = make_executor(middleware=[Fail(error)])
    task = executor.task(
        id="t", timeout_ms=5000, max_retry_attempts=2, run=lambda ctx, i: runs.append(i)
    )
    await executor.start()
    execution = await (await executor.enqueue_task(task, 1)).wait_and_get_execution(timeout=10)
    assert execution.status is status
    assert execution.error is not None
    assert execution.error.message == str(error)
    assert len(runs) == attempts


class Rewrite(BaseMiddleware):
    async def attempt(self, attempt: Attempt, call_next: AttemptNext) -> Any:
        return {"wrapped": await call_next(), "input": attempt.input}


async def test_what_middleware_returns_is_the_result(
    make_executor: Callable[..., DurableExecutor],
) -> None:
    executor = make_executor(middleware=[Rewrite()])
    task = executor.task(id="t", timeout_ms=5000, run=lambda ctx, i: i + 1)
    await executor.start()
    execution = await (await executor.enqueue_task(task, 1)).wait_and_get_execution(timeout=10)
    assert execution.output == {"wrapped": 2, "input": 1}


class SeesCancellation(BaseMiddleware):
    def __init__(self) -> None:
        self.cancelled = asyncio.Event()

    async def attempt(self, attempt: Attempt, call_next: AttemptNext) -> Any:
        try:
            return await call_next()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


async def test_cancellation_and_timeouts_pass_through_middleware(
    make_executor: Callable[..., DurableExecutor],
) -> None:
    seen = SeesCancellation()
    executor = make_executor(middleware=[seen])
    started = asyncio.Event()

    async def long(ctx: TaskContext, input: None) -> None:
        started.set()
        await asyncio.sleep(30)

    task = executor.task(id="long", timeout_ms=60_000, run=long)
    slow = executor.task(id="slow", timeout_ms=50, run=lambda ctx, i: asyncio.sleep(30))
    await executor.start()
    handle = await executor.enqueue_task(task, None)
    await asyncio.wait_for(started.wait(), 10)
    await handle.cancel()
    await asyncio.wait_for(seen.cancelled.wait(), 10)
    assert (await handle.wait_and_get_execution(timeout=10)).status is S.CANCELLED
    timed = await (await executor.enqueue_task(slow, None)).wait_and_get_execution(timeout=10)
    assert timed.status is S.TIMED_OUT


def test_middleware_must_be_instances_with_both_hooks(
    make_executor: Callable[..., DurableExecutor],
) -> None:
    assert isinstance(Recorder("r", []), Middleware)
    with pytest.raises(ValueError, match="is not a middleware instance"):
        make_executor(middleware=[Recorder])
    with pytest.raises(ValueError, match="is not a middleware instance"):
        make_executor(middleware=[object()])
