"""Real processes on one SQLite file: SIGKILL mid-tree, SIGSTOP fencing, runs-once sharing."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from durable_execution import DurableExecutor, DurableTaskExecutionStatus
from durable_execution.storage.sqlite import SQLiteStorage

from .helpers import wait_until
from .workers.tasks import define_tasks

S = DurableTaskExecutionStatus
WORKER = Path(__file__).parent / "workers" / "worker.py"

StartWorker = Callable[..., Awaitable[asyncio.subprocess.Process]]


@pytest.fixture
async def start_worker(tmp_path: Path) -> AsyncIterator[StartWorker]:
    """Start worker processes on ``tmp_path/executions.db``; kill leftovers at the end."""
    processes: list[asyncio.subprocess.Process] = []

    async def start(name: str, *flags: str) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(WORKER),
            str(tmp_path / "executions.db"),
            name,
            *flags,
            stdout=asyncio.subprocess.PIPE,
        )
        processes.append(process)
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert line.strip() == b"ready", line
        return process

    yield start
    for process in processes:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.fixture
async def controller(tmp_path: Path) -> AsyncIterator[DurableExecutor]:
    """An executor in the test process on the same file, used to enqueue and read."""
    executor = DurableExecutor(
        SQLiteStorage(tmp_path / "executions.db"),
        expire_leeway_ms=100,
        background_process_interval_ms=20,
    )
    yield executor
    await executor.shutdown()
    await executor.storage.close()


def write_locked(path: Path) -> bool:
    """Whether some connection holds the file's write lock right now."""
    conn = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        conn.close()


async def pause_outside_a_transaction(pid: int, path: Path) -> None:
    """SIGSTOP ``pid`` at a moment it holds no write lock.

    A process paused inside a write transaction stalls every SQLite writer until it resumes
    (a limit of SQLite's single-writer design, see docs/design.md); this test is about
    fencing, so it pauses the worker between two transactions.
    """
    for _ in range(200):
        os.kill(pid, signal.SIGSTOP)
        if not write_locked(path):
            return
        os.kill(pid, signal.SIGCONT)
        await asyncio.sleep(0.001)  # let it finish its transaction, then try again
    raise AssertionError("the worker never left its write transaction")


def read_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


async def test_sigkill_mid_tree_then_a_new_worker_finishes_it(
    tmp_path: Path, start_worker: StartWorker, controller: DurableExecutor
) -> None:
    log = tmp_path / "leaves.log"
    tasks = define_tasks(controller)
    first = await start_worker("first", "--concurrency", "2")
    handle = await controller.enqueue_task(
        tasks["tree"], {"children": 6, "seconds": 0.3, "log": str(log)}
    )

    def mid_tree() -> bool:
        lines = read_lines(log)
        ended = sum(line.startswith("end") for line in lines)
        started = sum(line.startswith("start") for line in lines)
        return ended >= 2 and started > ended

    await wait_until(mid_tree, timeout=20, interval=0.005, message="the tree to be half done")
    first.kill()  # SIGKILL: no shutdown, no cleanup
    await first.wait()
    assert first.returncode == -signal.SIGKILL
    killed_mid_run = {line.split()[1] for line in read_lines(log) if line.startswith("start")} - {
        line.split()[1] for line in read_lines(log) if line.startswith("end")
    }
    assert killed_mid_run

    await start_worker("second")
    execution = await handle.wait_and_get_execution(timeout=30)
    assert execution.status is S.COMPLETED, execution.error
    assert execution.output == [i * 10 for i in range(6)]
    children = await controller.storage.get_executions(list(execution.child_execution_ids))
    assert [c.status for c in children] == [S.COMPLETED] * 6
    assert [c.retry_attempts for c in children] == [0] * 6  # a crash uses up no retry
    starts = collections.Counter(
        line.split()[1] for line in read_lines(log) if line.startswith("start")
    )
    for index in killed_mid_run:
        assert starts[index] == 2  # run again after the lease expired


async def test_a_paused_worker_cannot_overwrite_the_new_owners_result(
    tmp_path: Path, start_worker: StartWorker, controller: DurableExecutor
) -> None:
    marker = tmp_path / "fenced.log"
    tasks = define_tasks(controller, name="new_owner")
    paused = await start_worker("paused_owner", "--leeway-ms", "100")
    handle = await controller.enqueue_task(tasks["fenced"], {"seconds": 0.3, "marker": str(marker)})

    async def claimed() -> bool:
        return (await handle.get_execution()).status is S.RUNNING

    await wait_until(claimed, interval=0.002, message="the worker to claim the execution")
    await pause_outside_a_transaction(paused.pid, tmp_path / "executions.db")
    try:
        await controller.start()  # expires the paused worker's lease, runs it again
        execution = await handle.wait_and_get_execution(timeout=20)
        assert (execution.status, execution.output) == (S.COMPLETED, "new_owner")
    finally:
        os.kill(paused.pid, signal.SIGCONT)
    # The paused worker wakes up, finishes its stale run and tries to record it.
    await wait_until(
        lambda: "paused_owner" in read_lines(marker), message="the stale run to return"
    )
    paused.send_signal(signal.SIGTERM)  # graceful: drains its pending writes before exiting
    assert await asyncio.wait_for(paused.wait(), 30) == 0
    final = await handle.get_execution()
    assert (final.status, final.output) == (S.COMPLETED, "new_owner")


async def test_two_worker_processes_run_each_execution_once(
    tmp_path: Path, start_worker: StartWorker, controller: DurableExecutor
) -> None:
    log = tmp_path / "runs.log"
    tasks = define_tasks(controller)
    await asyncio.gather(start_worker("one"), start_worker("two"))
    items: list[tuple[Any, Any]] = [
        (tasks["counted"], {"n": n, "log": str(log)}) for n in range(300)
    ]
    handles = await controller.enqueue_tasks(items)
    results = await asyncio.gather(*(h.wait_and_get_execution(timeout=60) for h in handles))
    assert [r.output for r in results] == list(range(300))
    runs = collections.Counter(read_lines(log))
    assert len(runs) == 300
    assert set(runs.values()) == {1}
