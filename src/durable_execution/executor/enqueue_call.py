"""One ``executor.enqueue_task(...)`` call: an enqueue that starts at the call.

Its result is an :class:`EnqueueCall`, a
:class:`~durable_execution.executor.future_coroutine.FutureCoroutine` resolved with the new
execution's handle once the insert that holds it committed (durable when the await returns,
as before), or with the error that stored nothing. In the common case (no middleware, no
caller's transaction, no input validated at enqueue) the call builds the execution and hands
it to the executor's group commit (:meth:`GroupCommit.submit
<durable_execution.executor.group_commit.GroupCommit.submit>`): the enqueues made in the same
turn of the event loop share one insert, and a gather of thousands of them costs about what
one ``enqueue_tasks`` of as many does. Otherwise a task of its own runs the enqueue through
the whole chain (:meth:`EnqueueCall.follow`).

Cancelling the call before its insert starts stores nothing; once the insert has started,
the execution is stored and runs, and only the caller stops waiting (as cancelling an
enqueue in flight always meant).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import TYPE_CHECKING, Any, TypeVar

from durable_execution.executor.enqueue import check_idempotency
from durable_execution.executor.future_coroutine import FutureCoroutine
from durable_execution.executor.group_commit import GroupCommit, Part
from durable_execution.handle import DurableTaskHandle
from durable_execution.storage.records import NewExecution

if TYPE_CHECKING:
    from durable_execution.executor.executor import DurableExecutor

__all__ = ["EnqueueCall", "EnqueuePart"]

T = TypeVar("T")


class EnqueueCall(FutureCoroutine[T]):
    """An ``enqueue_task`` call: resolved with the handle (see the module docstring)."""

    __slots__ = ("_lead", "_task")

    # While the batch this call's part leads has not started: the group commit and the part,
    # so that awaiting the call inserts the part at once, in the awaiting task (what a lone
    # caller does: no hop through another task).
    _lead: tuple[GroupCommit, Part] | None
    _task: asyncio.Task[T] | None  # what follow() runs

    @classmethod
    def on(cls, loop: asyncio.AbstractEventLoop) -> EnqueueCall[T]:
        """A new call on ``loop`` (made without a Python ``__init__``: one per enqueue)."""
        call: EnqueueCall[T] = cls(loop=loop)
        call._lead = call._task = None
        return call

    def follow(self, coroutine: Coroutine[Any, Any, T]) -> None:
        """Run ``coroutine`` (the whole enqueue chain) in a task of its own, and end with
        its end; cancelling this call cancels the task at once (before it starts, if it has
        not: then nothing is stored)."""
        self._task = task = self.get_loop().create_task(coroutine)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[T]) -> None:
        if self.done():
            if not task.cancelled():
                task.exception()  # retrieved: the caller stopped waiting for it
        elif task.cancelled():
            super().cancel()
        elif (exc := task.exception()) is not None:
            self.set_exception(exc)
        else:
            self.set_result(task.result())

    def cancel(self, msg: Any = None) -> bool:
        if self._task is not None:
            self._task.cancel(msg)
        return super().cancel(msg)

    def submit(self, inserts: GroupCommit, part: Part) -> None:
        """Submit ``part``, this call's execution, to ``inserts``."""
        if inserts.submit(part):
            self._lead = (inserts, part)

    def __await__(self) -> Generator[Any, None, T]:
        lead = self._lead
        if lead is not None:
            self._lead = None
            inserts, part = lead
            if inserts.take_alone(part):
                yield from inserts.insert_taken(part).__await__()
        return (yield from super().__await__())

    __iter__ = __await__


class EnqueuePart(Part):
    """The execution of one call, in the group commit's next batch."""

    __slots__ = ("_call", "_executor")

    def __init__(
        self,
        new: NewExecution,
        now_ms: int,
        call: EnqueueCall[DurableTaskHandle[Any]],
        executor: DurableExecutor,
    ) -> None:
        self.executions = [new]  # Part's fields, set here: one part per enqueue
        self.now_ms = now_ms
        self._call = call
        self._executor = executor

    def done(self) -> bool:
        return self._call.done()

    def succeed(self, ids: list[str]) -> None:
        call = self._call
        call._lead = None  # no cycle left between the call and this part
        if call.done():  # cancelled meanwhile
            return
        new = self.executions[0]
        if ids[0] == new.execution_id:
            call.set_result(DurableTaskHandle(self._executor, new.task_id, ids[0]))
            return
        # Found stored under its idempotency key: its handle, if it is the same work.
        call.follow(_found(self._executor, new, ids[0]))

    def fail(self, exc: BaseException) -> None:
        call = self._call
        call._lead = None
        if not call.done():
            call.set_exception(exc)

    def cancel(self) -> None:
        self._call.cancel()


async def _found(
    executor: DurableExecutor, new: NewExecution, execution_id: str
) -> DurableTaskHandle[Any]:
    await check_idempotency(executor.storage, executor.options, [new], [execution_id])
    return DurableTaskHandle(executor, new.task_id, execution_id)
