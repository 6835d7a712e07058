"""W1 with several executor processes: N no-op tasks enqueued in a batch by this process, run
by K worker processes on one PostgreSQL schema (or SQLite file) → tasks/s.

    python bench/multi.py {postgres,sqlite} [--workers 2] [--n 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit, scratch_url

from durable_execution import DurableExecutor, TaskContext
from durable_execution.storage import storage_from_url


async def noop(ctx: TaskContext, input: Any) -> None:
    return None


def define(executor: DurableExecutor) -> Any:
    return executor.task(id="noop", timeout_ms=30_000, run=noop)


async def worker(url: str) -> None:
    executor = DurableExecutor(storage_from_url(url), max_concurrent_task_executions=1_000)
    define(executor)
    async with executor:
        print("ready", flush=True)
        await asyncio.Event().wait()


async def measure(url: str, workers: int, n: int) -> dict[str, Any]:
    processes = []
    for _ in range(workers):
        process = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "worker", url, stdout=asyncio.subprocess.PIPE
        )
        assert process.stdout is not None
        assert (await process.stdout.readline()).strip() == b"ready"
        processes.append(process)
    storage = storage_from_url(url)
    controller = DurableExecutor(storage, background_process_interval_ms=20)
    task = define(controller)
    try:
        start = time.perf_counter()
        handles = await controller.enqueue_tasks([(task, None)] * n)
        await controller.wait_until_finished(handles, timeout=300)
        elapsed = time.perf_counter() - start
    finally:
        for process in processes:
            process.kill()
            await process.wait()
        await storage.close()
    return {
        "tasks": n,
        "workers": workers,
        "seconds": round(elapsed, 3),
        "tasks_per_s": round(n / elapsed),
    }


async def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "worker":
        await worker(sys.argv[2])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("backend", choices=["sqlite", "postgres"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--n", type=int, default=5_000)
    args = parser.parse_args()
    async with scratch_url(args.backend, "multi") as (url, _):
        result = await measure(url, args.workers, args.n)
    workload = f"w1_batch_{args.workers}procs"
    emit({"engine": "durable_execution", "backend": args.backend, "workload": workload} | result)


if __name__ == "__main__":
    asyncio.run(main())
