"""Sync tasks run in daemon threads: a task that ignores cancellation cannot keep the process
alive after shutdown; with ``interrupt_sync_tasks`` its thread gets an exception on cancel,
timeout or shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from durable_execution import (
    DurableExecutionCancelledError,
    DurableExecutionErrorType,
    DurableExecutionTimedOutError,
    DurableExecutor,
    DurableTaskExecutionStatus,
    TaskContext,
)
from durable_execution.executor.threads import TaskThreads

from .helpers import wait_until

S = DurableTaskExecutionStatus
STUBBORN = Path(__file__).parent / "workers" / "stubborn.py"


@pytest.mark.parametrize("interrupt", [False, True])
async def test_a_process_exits_after_shutdown_while_a_sync_task_ignores_its_cancellation(
    tmp_path: Path, interrupt: bool
) -> None:
    flags = ["--interrupt"] if interrupt else []
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(STUBBORN),
        str(tmp_path / "app.db"),
        *flags,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert line.startswith(b"started te_"), line
        execution_id = line.split()[1].decode()
        assert await asyncio.wait_for(process.stdout.readline(), 30) == b"shut down\n"
        # Before: the interpreter joined the task's thread at exit, forever.
        assert await asyncio.wait_for(process.wait(), 10) == 0
        assert process.stderr is not None
        errors = (await process.stderr.read()).decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if interrupt:  # time.sleep returns within 50 ms, then the exception ends the task
        assert "still running in their threads" not in errors
    else:
        assert "1 sync task run(s) still running in their threads at shutdown" in errors
        assert f"{execution_id} (stubborn)" in errors


def busy_until(stop: threading.Event, seen: list[BaseException]) -> Callable[[TaskContext], None]:
    """A sync task that never looks at its context: it computes until ``stop`` is set, and
    records the exception that ended it."""

    def run(ctx: TaskContext) -> None:
        try:
            count = 0
            while not stop.is_set():
                count += 1
        except BaseException as exc:
            seen.append(exc)
            raise

    return run


@pytest.fixture
def stop() -> object:
    event = threading.Event()
    yield event
    event.set()  # release the threads of tests that do not interrupt them


async def test_a_timeout_raises_timed_out_inside_the_thread(
    make_executor: Callable[..., DurableExecutor], stop: threading.Event
) -> None:
    executor = make_executor(interrupt_sync_tasks=True)
    seen: list[BaseException] = []
    task = executor.task(id="busy", timeout_ms=200, run=busy_until(stop, seen))
    await executor.start()
    execution = await (await executor.enqueue_task(task)).wait_and_get_execution(timeout=10)
    assert execution.status is S.TIMED_OUT
    assert execution.error is not None
    assert execution.error.error_type is DurableExecutionErrorType.TIMED_OUT
    await wait_until(lambda: seen, message="the thread to see the exception")
    assert [type(e) for e in seen] == [DurableExecutionTimedOutError]
    assert executor._engine.runner.still_running_in_threads() == []


async def test_a_cancel_raises_cancelled_inside_the_thread(
    make_executor: Callable[..., DurableExecutor], stop: threading.Event
) -> None:
    executor = make_executor(interrupt_sync_tasks=True)
    seen: list[BaseException] = []
    task = executor.task(id="busy", timeout_ms=60_000, run=busy_until(stop, seen))
    await executor.start()
    handle = await executor.enqueue_task(task)
    await wait_until(executor._engine.runner.still_running_in_threads, message="the run")
    await handle.cancel()
    assert (await handle.wait_and_get_execution(timeout=10)).status is S.CANCELLED
    await wait_until(lambda: seen, message="the thread to see the exception")
    assert [type(e) for e in seen] == [DurableExecutionCancelledError]


async def test_a_shutdown_interrupts_the_threads_it_stops(
    make_executor: Callable[..., DurableExecutor], stop: threading.Event
) -> None:
    executor = make_executor(interrupt_sync_tasks=True, shutdown_timeout_ms=50)
    seen: list[BaseException] = []
    task = executor.task(id="busy", timeout_ms=60_000, run=busy_until(stop, seen))
    await executor.start()
    handle = await executor.enqueue_task(task)
    await wait_until(executor._engine.runner.still_running_in_threads, message="the run")
    await executor.shutdown()
    await wait_until(lambda: seen, message="the thread to see the exception")
    assert [type(e) for e in seen] == [DurableExecutionCancelledError]
    assert (await handle.get_execution()).status is S.READY  # given back


async def test_without_the_option_the_thread_runs_on_and_shutdown_names_it(
    make_executor: Callable[..., DurableExecutor],
    stop: threading.Event,
    caplog: pytest.LogCaptureFixture,
) -> None:
    executor = make_executor(shutdown_timeout_ms=50)
    seen: list[BaseException] = []
    task = executor.task(id="busy", timeout_ms=60_000, run=busy_until(stop, seen))
    await executor.start()
    handle = await executor.enqueue_task(task)
    await wait_until(executor._engine.runner.still_running_in_threads, message="the run")
    with caplog.at_level(logging.WARNING, logger="durable_execution"):
        await executor.shutdown()
    assert "still running in their threads at shutdown" in caplog.text
    assert f"{handle.execution_id} (busy)" in caplog.text
    assert seen == []
    stop.set()


def test_an_interrupt_never_reaches_a_call_that_is_over_or_the_next_one() -> None:
    threads = TaskThreads(1)
    try:
        first = threads.submit(lambda: 1, label="first")
        assert first.future.result(timeout=5) == 1
        assert not first.interrupt(DurableExecutionCancelledError)  # over: nothing sent
        second = threads.submit(lambda: sum(range(1000)), label="second")
        assert second.future.result(timeout=5) == sum(range(1000))
    finally:
        threads.shutdown()


def test_many_interrupts_near_the_end_of_calls_leave_the_thread_working() -> None:
    """Interrupts sent as calls return: each call ends with its result or the interrupt,
    and the one thread keeps serving calls (a late interrupt never escapes into it)."""
    threads = TaskThreads(1)
    try:
        for n in range(300):
            call = threads.submit(lambda n=n: sum(range(n * 10)), label=str(n))
            while not call.future.done():
                call.interrupt(DurableExecutionCancelledError)
            with contextlib.suppress(DurableExecutionCancelledError):
                assert call.future.result(timeout=5) == sum(range(n * 10))
        assert threads.submit(lambda: "alive", label="last").future.result(timeout=5) == "alive"
        assert len(threads._threads) == 1
    finally:
        threads.shutdown()


def test_threads_are_daemon_threads_and_shutdown_does_not_wait() -> None:
    threads = TaskThreads(2)
    release = threading.Event()
    call = threads.submit(lambda: release.wait(10), label="waiting")
    try:
        assert all(thread.daemon for thread in threads._threads)
        started = time.monotonic()
        threads.shutdown()
        assert time.monotonic() - started < 1
        assert threads.running_labels() == ["waiting"]
    finally:
        release.set()
    assert call.future.result(timeout=5) is True
