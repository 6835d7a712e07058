"""Running one attempt of a claimed execution, bounded by its timeout and stoppable."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import dataclasses
import functools
import inspect
import threading
from collections.abc import Callable, Sequence
from typing import Any

from durable_execution.attributes import encode_attributes
from durable_execution.context import TaskContext
from durable_execution.errors import (
    DurableExecutionCancelledError,
    DurableExecutionError,
    DurableExecutionErrorInfo,
    DurableExecutionErrorType,
    DurableExecutionTimedOutError,
    SerializationError,
)
from durable_execution.executor.outcomes import (
    DataLimits,
    completion_value,
    failure_outcome,
    success_outcome,
)
from durable_execution.executor.threads import TaskThreads
from durable_execution.middleware import Attempt, Middleware, run_attempt
from durable_execution.serialization import Serializer
from durable_execution.storage.records import ExecutionOutcome, ExecutionRecord
from durable_execution.task import DurableTask
from durable_execution.validation import InputValidator

__all__ = ["AttemptRunner", "RunningExecution", "StopReason"]


class StopReason:
    """Why a running attempt was stopped from outside (its outcome is then not recorded)."""

    CANCELLED = "cancelled"
    SHUTDOWN = "shutdown"
    LEASE_LOST = "lease_lost"  # a renewal was refused: another executor may run it now


class RunningExecution:
    """One execution this executor is running: its claim, context and asyncio task."""

    __slots__ = (
        "ctx",
        "execute_task",
        "lease_end_ms",
        "parent_task",
        "record",
        "record_as_stored",
        "started",
        "stop_reason",
        "task",
        "timed_out",
        "timeout_at_ms",
    )

    def __init__(
        self,
        record: ExecutionRecord,
        task: DurableTask[Any, Any],
        ctx: TaskContext,
        parent_task: DurableTask[Any, Any] | None = None,
    ) -> None:
        self.record = record
        self.task = task
        self.ctx = ctx
        # The parent's task, when this executor created the execution (direct dispatch) and
        # so knows it: a sequence's step then starts the next step with its own outcome.
        self.parent_task = parent_task
        self.execute_task: asyncio.Task[None] | None = None
        # Set by the asyncio task's first step. Cancelling a task that has not started yet
        # would throw into a coroutine that never ran, skipping all of its cleanup: such a
        # run is only marked stopped, and returns at once when it starts.
        self.started = False
        self.stop_reason: str | None = None
        self.timed_out = False
        # The end of the claim's lease and its backstop as this executor knows them, on its
        # own clock (the storage may keep the database's: see ExecutionEngine._spawn): set by
        # the claim, the lease moved by each renewal (see heartbeat.py); the outcome writer
        # gives up past the lease.
        self.lease_end_ms = record.expires_at_ms or 0
        self.timeout_at_ms = record.timeout_at_ms
        # Whether ``record`` is the execution as stored (see ExecutionEngine._spawn).
        self.record_as_stored = True

    def stop(self, reason: str) -> None:
        """Stop the run: cancel its asyncio task and tell a sync task through its context.

        Nothing is recorded for a stopped run; whoever stopped it owns what happens next.
        """
        if self.stop_reason is not None:
            return
        self.stop_reason = reason
        self.ctx.request_cancel()
        if self.started and self.execute_task is not None:
            self.execute_task.cancel()


def _expire(running: RunningExecution, task: asyncio.Task[Any]) -> None:
    """The attempt ran out of time: stop it (its outcome is then a timeout)."""
    if running.stop_reason is None:
        running.timed_out = True
        running.ctx.request_cancel()
        task.cancel()


def _timed_out(running: RunningExecution, loop: asyncio.AbstractEventLoop, deadline: float) -> bool:
    """Whether the attempt ran out of time, its timer having fired or not.

    An async task that blocks the event loop (``time.sleep`` in ``async def``) keeps the timer
    from firing: when it returns, in the same step of the loop, its result comes before the
    timer's callback. Checked here, such an attempt still times out instead of being recorded
    as if it had kept its bound (and its lease: see docs/reliability.md).
    """
    if not running.timed_out and loop.time() >= deadline:
        running.timed_out = True
        running.ctx.request_cancel()
    return running.timed_out


def _close_dropped_coroutine(future: concurrent.futures.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is None:
        result = future.result()
        if inspect.iscoroutine(result):
            result.close()


async def _validated(task: DurableTask[Any, Any], validator: InputValidator, raw: Any) -> Any:
    """``validator(raw)``; an invalid input fails the execution at once (not retryable)."""
    try:
        return await validator(raw)
    except Exception as exc:
        raise DurableExecutionError(
            f"Invalid input to task {task.id}: {exc}", is_retryable=False
        ) from exc


class AttemptRunner:
    """Runs attempts: input decoding and validation, the call, the timeout, the outcome."""

    def __init__(
        self,
        *,
        serializer: Serializer,
        limits: DataLimits,
        clock: Callable[[], int],
        max_threads: int,
        middleware: Sequence[Middleware] = (),
        interrupt_sync_tasks: bool = False,
    ) -> None:
        self._middleware = tuple(middleware)
        self._serializer = serializer
        self._limits = limits
        self._clock = clock
        # Daemon threads: a sync task that never returns cannot keep the process alive.
        self.threads = TaskThreads(max_threads)
        self._interrupt_sync_tasks = interrupt_sync_tasks
        self.shutdown_event = threading.Event()

    def new_context(self, record: ExecutionRecord) -> TaskContext:
        return TaskContext(
            task_id=record.task_id,
            execution_id=record.execution_id,
            attempt=record.retry_attempts,
            prev_error=record.error if record.retry_attempts > 0 else None,
            root_execution_id=record.root_execution_id,
            parent_execution_id=record.parent_execution_id,
            shutdown_event=self.shutdown_event,
            attributes=record.attributes,
        )

    async def run(self, running: RunningExecution) -> ExecutionOutcome | None:
        """Run one attempt in the calling task; ``None`` when it was stopped from outside.

        The attempt runs inline (no extra asyncio task) under ``asyncio.timeout``; a stop
        cancels the calling task, which this method absorbs.
        """
        record, task = running.record, running.task
        try:
            raw_input = self._serializer.deserialize(record.input)
        except Exception as exc:
            error = DurableExecutionErrorInfo(
                message=f"Cannot deserialize the input of task {task.id}: {exc}",
                is_retryable=False,
            )
            return failure_outcome(record, task, error, self._clock())
        current = running.execute_task
        assert current is not None, "runs happen in their own asyncio task"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + task.options.timeout_ms / 1000
        timer = loop.call_at(deadline, _expire, running, current)
        child_attributes: str | None = None
        try:
            if self._middleware:
                result, child_attributes = await self._attempt_in_middleware(running, raw_input)
            else:
                result = await self._attempt(running, raw_input)
        except asyncio.CancelledError:
            if running.stop_reason is None and not running.timed_out:
                raise  # not ours: the event loop or the application is cancelling us
            return self._interrupted(running, current)
        except Exception as exc:
            if running.stop_reason is not None or _timed_out(running, loop, deadline):
                return self._interrupted(running, current)
            error = DurableExecutionErrorInfo.from_exception(exc)
            return failure_outcome(record, task, error, self._clock(), exc)
        finally:
            timer.cancel()
        if running.stop_reason is not None or _timed_out(running, loop, deadline):
            return self._interrupted(running, current)  # it swallowed its cancellation
        return success_outcome(
            record,
            task,
            raw_input,
            result,
            self._serializer,
            self._limits,
            self._clock(),
            child_attributes,
        )

    async def _attempt_in_middleware(
        self, running: RunningExecution, raw_input: Any
    ) -> tuple[Any, str | None]:
        """The attempt inside the middleware's hooks; its result, and the attributes the
        middleware set for the children it creates (stored text)."""
        attempt = Attempt(running.task, running.ctx, raw_input)
        result = await run_attempt(
            self._middleware,
            attempt,
            lambda: self._attempt(running, raw_input),
        )
        try:
            return result, encode_attributes(attempt.child_attributes)
        except SerializationError as exc:
            raise DurableExecutionError(
                f"Middleware set invalid child attributes: {exc}", is_retryable=False
            ) from exc

    def _interrupted(
        self, running: RunningExecution, current: asyncio.Task[Any]
    ) -> ExecutionOutcome | None:
        """A run we stopped (nothing to record) or that timed out; the cancellation we asked
        for is absorbed so the task can carry on normally."""
        if current.cancelling():
            current.uncancel()
        return None if running.stop_reason is not None else self._timed_out(running)

    def _timed_out(self, running: RunningExecution) -> ExecutionOutcome:
        running.ctx.request_cancel()
        timeout_ms = running.task.options.timeout_ms
        error = DurableExecutionErrorInfo(
            message=f"Task {running.task.id} timed out after {timeout_ms} ms",
            error_type=DurableExecutionErrorType.TIMED_OUT,
            is_retryable=True,
        )
        return failure_outcome(running.record, running.task, error, self._clock())

    async def _attempt(self, running: RunningExecution, raw: Any) -> Any:
        task, ctx = running.task, running.ctx
        value = raw
        if task.is_completion:
            value = completion_value(raw)
            if task.parent_input_validator is not None:  # value.input: the parent's, validated
                parsed = await _validated(task, task.parent_input_validator, value.input)
                value = dataclasses.replace(value, input=parsed)
        elif task.validator is not None:
            value = await _validated(task, task.validator, raw)
        if task.is_async:
            return await task.call(ctx, value)
        fn = functools.partial(contextvars.copy_context().run, task.call, ctx, value)
        call = self.threads.submit(fn, label=f"{ctx.execution_id} ({task.id})")
        future = call.future
        try:
            result = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            if self._interrupt_sync_tasks:
                timed_out = running.timed_out and running.stop_reason is None
                call.interrupt(
                    DurableExecutionTimedOutError if timed_out else DurableExecutionCancelledError
                )
            # The thread runs on: if it returns a coroutine (a plain function may), nobody will
            # await it; close it then rather than leave it to warn when collected.
            future.add_done_callback(_close_dropped_coroutine)
            raise
        if inspect.isawaitable(result):
            result = await result
        return result

    def still_running_in_threads(self) -> list[str]:
        """The sync calls still running in a thread (``"<execution id> (<task id>)"``)."""
        return self.threads.running_labels()

    async def wait_for_interrupted_threads(self, timeout_s: float) -> None:
        """With ``interrupt_sync_tasks``, give the calls still running up to ``timeout_s`` to
        end: the exception raised in their thread needs them to reach their next bytecode."""
        calls = self.threads.running_calls() if self._interrupt_sync_tasks else []
        if calls:
            await asyncio.wait([asyncio.wrap_future(c.future) for c in calls], timeout=timeout_s)

    async def close(self) -> None:
        """Let the worker threads go; threads still running finish on their own, and do not
        keep the process alive (daemon threads)."""
        self.threads.shutdown()
