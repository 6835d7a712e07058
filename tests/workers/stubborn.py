"""A process whose sync task ignores cancellation: it must still exit after shutdown().

Usage: python stubborn.py SQLITE_PATH [--interrupt]
Prints "started <execution id>" once the task runs, then shuts the executor down at once and
prints "shut down"; the process must then exit although the task's thread runs on.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from durable_execution import DurableExecutor, TaskContext
from durable_execution.storage.sqlite import SQLiteStorage


async def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    started = threading.Event()
    executor = DurableExecutor(
        SQLiteStorage(sys.argv[1]),
        shutdown_timeout_ms=100,
        background_process_interval_ms=20,
        interrupt_sync_tasks="--interrupt" in sys.argv,
    )

    def stubborn(ctx: TaskContext) -> None:
        started.set()
        while True:  # ignores ctx.is_cancelled(); blocked in a C call most of the time
            time.sleep(0.05)

    task = executor.task(id="stubborn", timeout_ms=60_000, run=stubborn)
    async with executor:
        handle = await executor.enqueue_task(task)
        await asyncio.to_thread(started.wait, 10)
        print("started", handle.execution_id, flush=True)
    print("shut down", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
