"""A handle's wait (``handle.wait_and_get_execution()``): a future that is also a coroutine.

Its result is an :class:`ExecutionWait`, a
:class:`~durable_execution.executor.future_coroutine.FutureCoroutine` resolved with the
decoded execution by whatever finds it finished (the executor's waiters, or the read they
share): ``gather`` over thousands of handles makes no task for each.

The wait begins when the method is called, not when its result is first awaited: its timeout
counts from the call. A wait nobody awaits any more (cancelled) is dropped by the waiters at
their next look at it (see :mod:`durable_execution.executor.waiters`).
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from durable_execution.errors import DurableExecutionNotFoundError, WaitTimeoutError
from durable_execution.execution import DurableTaskExecution
from durable_execution.executor.future_coroutine import FutureCoroutine
from durable_execution.executor.waiters import FinishWaiters, Wait
from durable_execution.serialization import Serializer
from durable_execution.storage.records import ExecutionRecord

__all__ = ["ExecutionWait", "wait_for_execution"]

T = TypeVar("T")


class ExecutionWait(FutureCoroutine[T]):
    """A handle's wait: resolved with the decoded execution (see the module docstring);
    cancelling it gives the wait up."""

    __slots__ = ()


def wait_for_execution(
    waiters: FinishWaiters,
    execution_id: str,
    timeout_s: float | None,
    serializer: Serializer,
) -> ExecutionWait[DurableTaskExecution[Any]]:
    """Wait until the execution is finished, then return it decoded with ``serializer``:
    at once when its final record is known, else once the waiters find it finished and read
    it (the read shared with the other waits of the moment).

    The result raises :class:`~durable_execution.errors.WaitTimeoutError` past ``timeout_s``
    (unless the execution finished in time: then its read is waited for), and
    :class:`~durable_execution.errors.DurableExecutionNotFoundError` when there is no such
    execution. Must be called from the executor's event loop.
    """
    loop = asyncio.get_running_loop()
    result: ExecutionWait[DurableTaskExecution[Any]] = ExecutionWait(loop=loop)
    record = waiters.finished.get(execution_id)
    if record is not None:  # final: finished, and nothing will change it
        _settle(result, record, serializer)
        return result
    delivery = _Delivery(waiters, execution_id, serializer, result)
    delivery.wait = waiters.deliver(execution_id, delivery)
    if timeout_s is not None and not result.done():
        delivery.timer = loop.call_later(timeout_s, delivery.time_out, timeout_s)
    return result


def _settle(
    result: ExecutionWait[DurableTaskExecution[Any]],
    record: ExecutionRecord,
    serializer: Serializer,
) -> None:
    try:
        execution = DurableTaskExecution.from_record(record, serializer)
    except Exception as exc:  # SerializationError, naming the execution and the field
        result.set_exception(exc)
    else:
        result.set_result(execution)


class _Delivery:
    """The caller the waiters resolve for one handle's wait: what a read found of the
    execution goes to ``result``, decoded (see ``ReadCaller`` in
    :mod:`durable_execution.executor.reads`)."""

    __slots__ = ("_execution_id", "_result", "_serializer", "_waiters", "timer", "wait")

    def __init__(
        self,
        waiters: FinishWaiters,
        execution_id: str,
        serializer: Serializer,
        result: ExecutionWait[DurableTaskExecution[Any]],
    ) -> None:
        self._waiters = waiters
        self._execution_id = execution_id
        self._serializer = serializer
        self._result = result
        self.wait: Wait | None = None  # the waiters' wait, None while a read is on the way
        self.timer: asyncio.TimerHandle | None = None

    def done(self) -> bool:
        return self._result.done()

    def set_result(self, found: dict[str, ExecutionRecord]) -> None:
        if self._result.done():  # cancelled meanwhile
            return
        execution_id = self._execution_id
        record = found.get(execution_id)
        if record is None:
            self.set_exception(
                DurableExecutionNotFoundError(f"No execution {execution_id} was found")
            )
        elif not record.is_finished:  # a retry reopened it since it finished: wait again
            self.wait = self._waiters.deliver(execution_id, self)
        else:
            self._stop_timer()
            _settle(self._result, record, self._serializer)

    def set_exception(self, exc: BaseException) -> None:
        if not self._result.done():
            self._stop_timer()
            self._result.set_exception(exc)

    def cancel(self) -> bool:
        self._stop_timer()
        return self._result.cancel()

    def time_out(self, timeout_s: float) -> None:
        """The timeout passed: fail the wait, unless the execution finished in time (its
        read is on the way: no wait registered, or one that counted it finished)."""
        self.timer = None
        wait = self.wait
        if self._result.done() or wait is None or self._waiters.has_ended(wait):
            return
        self._waiters.forget(wait)
        self._result.set_exception(
            WaitTimeoutError(f"1 of 1 execution(s) not finished after {timeout_s} s")
        )

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
