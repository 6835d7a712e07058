"""``executor.enqueue_task(...)`` starts at the call and returns a future that is also a
coroutine (executor/enqueue_call.py): calls made together share one insert, a lone awaited
call inserts in the awaiting task, errors come at the await, and a call cancelled before its
insert stores nothing."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import pytest

from durable_execution import (
    DurableExecutor,
    DurableTaskHandle,
    ExecutorShutdownError,
    TaskContext,
)
from durable_execution.middleware import BaseMiddleware, EnqueueNext, EnqueueRequest
from durable_execution.storage.memory import InMemoryStorage
from durable_execution.storage.protocol import DurableStorage

from .helpers import wait_until
from .test_group_commit import executor_on


async def test_calls_made_together_share_one_insert_run_by_a_task_of_its_own(
    make_executor: Callable[..., DurableExecutor], storage: DurableStorage
) -> None:
    executor, inserts, task = executor_on(make_executor, storage)
    await executor.start()
    calls = [executor.enqueue_task(task, i) for i in range(20)]
    handles = await asyncio.gather(*calls)
    assert [inserts.inputs(0)] == [[str(i) for i in range(20)]]
    assert len(inserts.calls) == 1
    assert inserts.tasks[0] is not asyncio.current_task()
    assert {h.execution_id for h in handles} <= inserts.committed
    finished = await executor.wait_and_get_executions(handles, timeout=20)
    assert [r.output for r in finished] == list(range(20))


async def test_a_call_awaited_after_others_joined_it_waits_for_their_shared_insert(
    make_executor: Callable[..., DurableExecutor], storage: DurableStorage
) -> None:
    executor, inserts, task = executor_on(make_executor, storage)
    await executor.start()
    first = executor.enqueue_task(task, 1)
    second = executor.enqueue_task(task, 2)
    handle = await first  # not alone any more: it does not insert the other's part itself
    assert inserts.tasks[0] is not asyncio.current_task()
    assert [inserts.inputs(0)] == [["1", "2"]]
    assert (await second).execution_id in inserts.committed
    assert handle.execution_id in inserts.committed


async def test_the_enqueue_starts_at_the_call(
    make_executor: Callable[..., DurableExecutor], storage: DurableStorage
) -> None:
    executor, inserts, task = executor_on(make_executor, storage)
    await executor.start()
    call = executor.enqueue_task(task, 7)
    assert inserts.calls == []  # at the loop's next turn
    await wait_until(call.done, message="the enqueue, never awaited, to be stored")
    handle = await call
    assert handle.execution_id in inserts.committed
    assert (await handle.wait_and_get_execution(timeout=20)).output == 7


async def test_a_call_cancelled_before_its_insert_stores_nothing(
    make_executor: Callable[..., DurableExecutor], storage: DurableStorage
) -> None:
    executor, inserts, task = executor_on(make_executor, storage)
    await executor.start()
    call = executor.enqueue_task(task, 1)
    call.close()  # as a coroutine is closed: the call is given up
    kept = executor.enqueue_task(task, 2)
    handle = await kept
    assert [inserts.inputs(i) for i in range(len(inserts.calls))] == [["2"]]
    with pytest.raises(asyncio.CancelledError):
        await call
    assert (await handle.wait_and_get_execution(timeout=20)).output == 2


async def test_a_lone_caller_cancelled_during_its_insert_leaves_the_next_enqueues_working(
    make_executor: Callable[..., DurableExecutor], storage: DurableStorage
) -> None:
    executor, inserts, task = executor_on(make_executor, storage)
    await executor.start()
    inserts.gate.clear()
    waiting = asyncio.create_task(_enqueue_and_await(executor, task, 1))
    await wait_until(lambda: inserts.calls, message="the lone insert")
    assert inserts.tasks == [waiting]  # made by the awaiting task itself
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    inserts.gate.set()
    handle = await executor.enqueue_task(task, 2)
    assert (await handle.wait_and_get_execution(timeout=20)).output == 2


async def _enqueue_and_await(executor: DurableExecutor, task: Any, input: Any) -> Any:
    return await executor.enqueue_task(task, input)


async def test_errors_are_raised_at_the_await_and_store_nothing(
    make_executor: Callable[..., DurableExecutor], storage: DurableStorage
) -> None:
    executor, inserts, task = executor_on(make_executor, storage)
    other = make_executor().task(id="elsewhere", timeout_ms=1_000, run=_echo)
    await executor.start()
    unregistered = executor.enqueue_task(other, 1)
    out_of_range = executor.enqueue_task(task, 1, priority=2**40)
    not_serializable = executor.enqueue_task(task, object())
    with pytest.raises(ValueError, match="not registered on this executor"):
        await unregistered
    with pytest.raises(ValueError, match="priority"):
        await out_of_range
    with pytest.raises(Exception, match="Input of task echo"):
        await not_serializable
    await executor.shutdown()
    with pytest.raises(ExecutorShutdownError):
        await executor.enqueue_task(task, 1)
    assert inserts.calls == []


async def _echo(ctx: TaskContext, i: Any) -> Any:
    return i


async def test_a_call_runs_as_a_coroutine_in_a_task_a_task_group_and_wait_for(
    make_executor: Callable[..., DurableExecutor], storage: DurableStorage
) -> None:
    executor, _, task = executor_on(make_executor, storage)
    await executor.start()
    call = executor.enqueue_task(task, 1)
    assert isinstance(call, asyncio.Future)
    assert isinstance(call, Coroutine)
    handles = [await asyncio.create_task(call)]
    async with asyncio.TaskGroup() as group:
        in_group = group.create_task(executor.enqueue_task(task, 2))
    handles.append(in_group.result())
    handles.append(await asyncio.wait_for(executor.enqueue_task(task, 3), timeout=20))
    handles.append(await asyncio.shield(executor.enqueue_task(task, 4)))
    finished = await executor.wait_and_get_executions(handles, timeout=20)
    assert [r.output for r in finished] == [1, 2, 3, 4]


class _Seen(BaseMiddleware):
    def __init__(self) -> None:
        self.inputs: list[Any] = []

    async def enqueue(
        self, requests: Sequence[EnqueueRequest], call_next: EnqueueNext
    ) -> list[DurableTaskHandle[Any]]:
        self.inputs.extend(request.input for request in requests)
        return await call_next(requests)


async def test_through_middleware_the_enqueue_starts_at_the_call_too(
    make_executor: Callable[..., DurableExecutor], storage: DurableStorage
) -> None:
    seen = _Seen()
    executor = make_executor(middleware=[seen])
    task = executor.task(id="echo", timeout_ms=10_000, run=_echo)
    await executor.start()
    given_up = executor.enqueue_task(task, 1)
    given_up.close()  # before its task ran: never reaches the middleware
    call = executor.enqueue_task(task, 2)
    await wait_until(call.done, message="the enqueue, never awaited, to be stored")
    assert seen.inputs == [2]
    handle = await call
    assert (await handle.wait_and_get_execution(timeout=20)).output == 2
    with pytest.raises(asyncio.CancelledError):
        await given_up


def test_without_a_running_loop_it_is_a_plain_coroutine_started_when_awaited() -> None:
    storage = InMemoryStorage()
    executor = DurableExecutor(storage)
    task = executor.task(id="echo", timeout_ms=10_000, run=_echo)
    call = executor.enqueue_task(task, 1)
    assert inspect.iscoroutine(call)

    async def main() -> str:
        handle = await call
        assert (await executor.get_execution(handle.execution_id)).status.value == "ready"
        return handle.execution_id

    assert asyncio.run(main())


async def test_enqueues_accepted_before_a_shutdown_are_stored_by_it(
    make_executor: Callable[..., DurableExecutor], storage: DurableStorage
) -> None:
    executor, inserts, task = executor_on(make_executor, storage)
    await executor.start()
    calls = [executor.enqueue_task(task, i) for i in range(5)]  # not inserted yet
    assert inserts.calls == []
    inserts.gate.clear()  # the insert takes its time: the shutdown waits for it
    shutdown = asyncio.ensure_future(executor.shutdown())
    await wait_until(lambda: inserts.calls, message="the insert")
    inserts.gate.set()
    await shutdown
    assert all(call.done() for call in calls)  # type: ignore[attr-defined]
    handles = await asyncio.gather(*calls)
    assert [inserts.inputs(0)] == [[str(i) for i in range(5)]]
    assert {h.execution_id for h in handles} <= inserts.committed
    records = await storage.get_executions([h.execution_id for h in handles])
    assert len(records) == 5  # stored, finished here or given back for the next start
