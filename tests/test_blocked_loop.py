"""An async task that blocks the event loop: its timeout still holds when it returns, another
process takes its execution over once the lease ends, and the loop-lag watchdog names it."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from durable_execution import (
    DurableExecutionErrorType,
    DurableExecutor,
    DurableTaskExecutionStatus,
    TaskContext,
)
from durable_execution.executor.watchdog import LoopWatchdog
from durable_execution.storage.sqlite import SQLiteStorage

S = DurableTaskExecutionStatus
BLOCKING = Path(__file__).parent / "workers" / "blocking.py"


async def test_an_attempt_that_blocked_the_loop_past_its_timeout_times_out(
    make_executor: Callable[..., DurableExecutor],
) -> None:
    """The timer cannot fire while the loop is blocked, and the task returns in the same step
    of the loop: it used to be recorded completed, 4x past its timeout."""
    executor = make_executor(loop_lag_warning_ms=0)

    async def blocking(ctx: TaskContext) -> str:
        time.sleep(0.4)
        return "done"

    task = executor.task(id="blocking", timeout_ms=100, run=blocking)
    await executor.start()
    execution = await (await executor.enqueue_task(task)).wait_and_get_execution(timeout=10)
    assert execution.status is S.TIMED_OUT
    assert execution.error is not None
    assert execution.error.error_type is DurableExecutionErrorType.TIMED_OUT


async def start_blocking(
    path: Path, seconds: float, timeout_ms: int, leeway_ms: int
) -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(BLOCKING),
        str(path),
        str(seconds),
        str(timeout_ms),
        str(leeway_ms),
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 30)
    assert line.startswith(b"started te_"), line
    return process, line.split()[1].decode()


async def finish_blocking(process: asyncio.subprocess.Process) -> list[str]:
    try:
        stdout, _ = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0
    return stdout.decode().splitlines()


@pytest.fixture
async def second_executor(tmp_path: Path) -> DurableExecutor:
    """Another executor on the same SQLite file, in this process, with the same task."""
    executor = DurableExecutor(
        SQLiteStorage(tmp_path / "shared.db"),
        expire_leeway_ms=200,
        background_process_interval_ms=20,
    )
    yield executor
    await executor.shutdown()


async def test_in_two_processes_a_block_within_the_lease_ends_timed_out_on_its_owner(
    tmp_path: Path, second_executor: DurableExecutor
) -> None:
    """The trial's case: a 4x overrun, shorter than the lease (timeout + expire_leeway_ms,
    10 s by default): nobody may take it over, and its owner must not record it completed."""
    ran_here: list[str] = []
    second_executor.task(id="blocking", timeout_ms=300, run=lambda ctx: ran_here.append("B"))
    await second_executor.start()
    process, execution_id = await start_blocking(tmp_path / "shared.db", 1.2, 300, 3_000)
    lines = await finish_blocking(process)
    assert lines[-2:] == ["returned", "final timed_out None"]
    assert ran_here == []  # its lease never ended: no takeover
    (record,) = await second_executor.storage.get_executions([execution_id])
    assert record.status is S.TIMED_OUT


async def test_in_two_processes_a_block_past_the_lease_is_taken_over(
    tmp_path: Path, second_executor: DurableExecutor
) -> None:
    second_executor.task(id="blocking", timeout_ms=300, run=lambda ctx: "B")
    await second_executor.start()
    started = time.monotonic()
    process, execution_id = await start_blocking(tmp_path / "shared.db", 3.0, 300, 200)
    handle = await second_executor.get_task_handle(second_executor._tasks["blocking"], execution_id)
    execution = await handle.wait_and_get_execution(timeout=20)
    taken_over_after = time.monotonic() - started
    assert (execution.status, execution.output) == (S.COMPLETED, "B")
    assert taken_over_after < 2.5  # the lease (0.5 s) ended while the owner was still blocked
    lines = await finish_blocking(process)
    assert lines[-2:] == ["returned", "final completed B"]  # its late write was refused


async def test_the_watchdog_names_the_execution_that_blocks_the_loop(
    make_executor: Callable[..., DurableExecutor], caplog: pytest.LogCaptureFixture
) -> None:
    executor = make_executor(loop_lag_warning_ms=100)

    async def blocking(ctx: TaskContext) -> str:
        time.sleep(0.6)
        return "done"

    task = executor.task(id="blocking", timeout_ms=5_000, run=blocking)
    await executor.start()
    with caplog.at_level(logging.WARNING, logger="durable_execution"):
        handle = await executor.enqueue_task(task)
        await handle.wait_and_get_execution(timeout=10)
    warnings = [r.getMessage() for r in caplog.records]
    blocked = [m for m in warnings if "event loop has been blocked" in m]
    assert len(blocked) == 1, warnings  # one per stall
    assert f"Blocked in task blocking ({handle.execution_id})" in blocked[0]
    assert f"Running executions: {handle.execution_id} (blocking)" in blocked[0]
    assert "test_blocked_loop.py" in blocked[0]  # where the loop is stuck


async def test_no_warning_while_the_loop_runs_and_none_when_turned_off(
    make_executor: Callable[..., DurableExecutor], caplog: pytest.LogCaptureFixture
) -> None:
    watched = make_executor(loop_lag_warning_ms=1_000)
    off = make_executor(loop_lag_warning_ms=0)
    assert off._engine._watchdog is None

    async def blocking(ctx: TaskContext) -> str:
        time.sleep(0.3)
        return "done"

    async def awaiting(ctx: TaskContext) -> str:
        await asyncio.sleep(0.3)
        return "done"

    blocking_task = off.task(id="blocking", timeout_ms=5_000, run=blocking)
    awaiting_task = watched.task(id="awaiting", timeout_ms=5_000, run=awaiting)
    await off.start()
    await watched.start()
    with caplog.at_level(logging.WARNING, logger="durable_execution"):
        await (await watched.enqueue_task(awaiting_task)).wait_and_get_execution(timeout=10)
        await (await off.enqueue_task(blocking_task)).wait_and_get_execution(timeout=10)
    # The watched executor's threshold (1 s) is above the 0.3 s block of the other one.
    assert "event loop has been blocked" not in caplog.text


def test_one_warning_per_stall_from_a_controlled_clock(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    watchdog = LoopWatchdog(1.0, logging.getLogger("durable_execution"), {}, clock=lambda: now[0])
    watchdog._last_beat = 100.0
    with caplog.at_level(logging.WARNING, logger="durable_execution"):
        now[0] = 100.9
        assert not watchdog.check()  # within the threshold
        now[0] = 101.5
        assert watchdog.check()
        now[0] = 103.0
        assert not watchdog.check()  # the same stall
        watchdog._last_beat = 103.0  # the loop ran again
        now[0] = 104.2
        assert watchdog.check()  # a new stall
    assert caplog.text.count("blocked for") == 2
    assert "blocked for 1.5 s (loop_lag_warning_ms=1000)" in caplog.text
    assert "Running executions: none" in caplog.text
