"""A process whose async task blocks its event loop with time.sleep, holding the lease.

Usage: python blocking.py SQLITE_PATH SECONDS TIMEOUT_MS LEEWAY_MS
Prints "started <execution id>" when the task runs, "returned" when time.sleep returns, and
"final <status> <output>" once the execution is finished, as this process reads it.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from durable_execution import DurableExecutor, TaskContext
from durable_execution.storage.sqlite import SQLiteStorage


async def main() -> None:
    path, seconds, timeout_ms, leeway_ms = sys.argv[1:5]
    executor = DurableExecutor(
        SQLiteStorage(path),
        expire_leeway_ms=int(leeway_ms),
        background_process_interval_ms=20,
        loop_lag_warning_ms=0,
    )

    async def blocking(ctx: TaskContext) -> str:
        print("started", ctx.execution_id, flush=True)
        time.sleep(float(seconds))  # blocks the event loop: no timer, no loop runs meanwhile
        print("returned", flush=True)
        return "A"

    task = executor.task(id="blocking", timeout_ms=int(timeout_ms), run=blocking)
    async with executor:
        handle = await executor.enqueue_task(task)  # dispatched here: this process holds it
        execution = await handle.wait_and_get_execution(timeout=60)
        print("final", execution.status.value, execution.output, flush=True)


if __name__ == "__main__":
    asyncio.run(main())
