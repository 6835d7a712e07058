"""The other process of W6 (``bench/engine.py``'s ``w6`` and ``sleeping_memory``): a web app's
executor, never started, on the benchmark's storage.

    python bench/sleeping_peer.py wake URL N     wake up o-0 .. o-N-1 (task "approval")
    python bench/sleeping_peer.py insert URL N   insert N sleeping roots s-0 .. s-N-1

Prints one JSON line: how long it took (the wake-ups run ``CONCURRENCY`` at a time, as
concurrent webhook requests would).
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit

from durable_execution import DurableExecutor, DurableTaskExecutionStatus
from durable_execution.storage import storage_from_url

SLEEP_TIMEOUT_MS = 3_600_000
CONCURRENCY = 50
INSERT_BATCH = 5_000


async def wake(executor: DurableExecutor, n: int) -> dict[str, float]:
    approval = executor.sleeping_task(id="approval", timeout_ms=SLEEP_TIMEOUT_MS)
    queue = iter(range(n))
    woken = 0

    async def waker() -> None:
        nonlocal woken
        for i in queue:
            execution = await executor.wakeup_sleeping_task_execution(approval, f"o-{i}", output=i)
            woken += execution.status is DurableTaskExecutionStatus.COMPLETED

    start = time.perf_counter()
    await asyncio.gather(*(waker() for _ in range(CONCURRENCY)))
    seconds = time.perf_counter() - start
    assert woken == n, woken
    return {"seconds": round(seconds, 3), "wakeups_per_s": round(n / seconds, 1)}


async def insert(executor: DurableExecutor, n: int) -> dict[str, float]:
    sleeper = executor.sleeping_task(id="sleeper", timeout_ms=SLEEP_TIMEOUT_MS)
    start = time.perf_counter()
    for first in range(0, n, INSERT_BATCH):
        count = min(INSERT_BATCH, n - first)
        await executor.enqueue_tasks([(sleeper, f"s-{first + i}") for i in range(count)])
    return {"seconds": round(time.perf_counter() - start, 3)}


async def main() -> None:
    action, url, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    storage = storage_from_url(url)
    executor = DurableExecutor(storage)
    try:
        result = await (wake if action == "wake" else insert)(executor, n)
    finally:
        await executor.shutdown()
        await storage.close()
    emit(result)


if __name__ == "__main__":
    asyncio.run(main())
