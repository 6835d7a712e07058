"""W5, crash recovery: kill -9 an executor running 100 tasks of 2 s; time until the survivor
has finished them all, and how many ran to completion twice.

    python bench/crash.py {sqlite,postgres} [--tasks 100] [--seconds 2]

Two worker processes share the storage. The first runs every task; once all are running it
is killed with SIGKILL, the second (idle until then) takes them over when their leases expire.
The bound is lease (timeout + leeway) + one poll interval + the task's own 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit, scratch_url

from durable_execution import DurableExecutor, TaskContext
from durable_execution.storage import storage_from_url

TIMEOUT_MS = 3_000
LEEWAY_MS = 1_000
INTERVAL_MS = 250


def append_line(path: str, line: str) -> None:
    with open(path, "a") as log:
        log.write(line + "\n")


def define(executor: DurableExecutor) -> Any:
    async def sleepy(ctx: TaskContext, input: dict[str, Any]) -> int:
        append_line(input["log"], f"start {ctx.execution_id}")
        await asyncio.sleep(input["seconds"])
        append_line(input["log"], f"end {ctx.execution_id}")
        return 1

    return executor.task(id="sleepy", timeout_ms=TIMEOUT_MS, run=sleepy)


async def worker(url: str) -> None:
    """A worker process: run tasks until killed."""
    executor = DurableExecutor(
        storage_from_url(url),
        expire_leeway_ms=LEEWAY_MS,
        background_process_interval_ms=INTERVAL_MS,
        max_concurrent_task_executions=1_000,
    )
    define(executor)
    async with executor:
        print("ready", flush=True)
        await asyncio.Event().wait()


async def start_worker(url: str) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "worker", url, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    assert (await process.stdout.readline()).strip() == b"ready"
    return process


def log_counts(log: Path) -> tuple[collections.Counter[str], collections.Counter[str]]:
    starts: collections.Counter[str] = collections.Counter()
    ends: collections.Counter[str] = collections.Counter()
    for line in log.read_text().splitlines() if log.exists() else []:
        kind, execution_id = line.split()
        (starts if kind == "start" else ends)[execution_id] += 1
    return starts, ends


async def measure(url: str, directory: Path, tasks: int, seconds: float) -> dict[str, Any]:
    log = directory / "runs.log"
    storage = storage_from_url(url)
    controller = DurableExecutor(storage, background_process_interval_ms=50)
    task = define(controller)
    first = await start_worker(url)
    handles = await controller.enqueue_tasks(
        [(task, {"log": str(log), "seconds": seconds})] * tasks
    )
    while True:  # until all are running, on the first worker
        if sum(log_counts(log)[0].values()) >= tasks:
            break
        await asyncio.sleep(0.01)
    survivor = await start_worker(url)
    killed_at = time.monotonic()
    os.kill(first.pid, signal.SIGKILL)
    await first.wait()
    await controller.wait_until_finished(handles, timeout=120)
    recovery_s = time.monotonic() - killed_at
    executions = await controller.wait_and_get_executions(handles)
    survivor.kill()
    await survivor.wait()
    await storage.close()
    starts, ends = log_counts(log)
    bound_s = (TIMEOUT_MS + LEEWAY_MS + INTERVAL_MS) / 1000 + seconds
    return {
        "tasks": tasks,
        "recovery_s": round(recovery_s, 3),
        "bound_s": round(bound_s, 3),
        "within_bound": recovery_s <= bound_s,
        "completed": sum(e.status.value == "completed" for e in executions),
        "lost": tasks - sum(e.status.value == "completed" for e in executions),
        "ran_again": sum(1 for n in starts.values() if n > 1),
        "completed_twice": sum(1 for n in ends.values() if n > 1),
    }


async def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "worker":
        await worker(sys.argv[2])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("backend", choices=["sqlite", "postgres"])
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    async with scratch_url(args.backend, "crash") as (url, directory):
        result = await measure(url, directory, args.tasks, args.seconds)
    emit({"engine": "durable_execution", "backend": args.backend, "workload": "w5"} | result)


if __name__ == "__main__":
    asyncio.run(main())
