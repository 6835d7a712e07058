"""What the worker registry costs each backend: a heartbeat, the leader's scan for ready
executions of unserved tasks with a large backlog, and a read with ``check_workers=True``
next to a plain one.

Usage: python bench/registry_costs.py [--ready N] [--repeat R]
(PostgreSQL from BENCH_POSTGRES_DSN, default the local ``test`` database, in a schema of its
own, dropped afterwards.)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from durable_execution import DurableExecutor
from durable_execution.storage.memory import InMemoryStorage
from durable_execution.storage.records import NewExecution
from durable_execution.storage.sqlite import SQLiteStorage
from durable_execution.storage.workers import WorkerInfo

DSN = os.environ.get("BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
BATCH = 5_000


async def timed(repeat: int, call: Callable[[], Awaitable[Any]]) -> float:
    """The median time of ``call`` in milliseconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        await call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


async def measure(name: str, storage: Any, ready: int, repeat: int) -> None:
    await storage.initialize()
    now = int(time.time() * 1000)
    for start in range(0, ready, BATCH):
        batch = [
            NewExecution(
                execution_id=f"te_{i:012d}",
                task_id="served" if i % 1000 else "orphan",
                input="null",
                start_at_ms=now,
            )
            for i in range(start, min(ready, start + BATCH))
        ]
        await storage.insert_executions(batch, now)
    await storage.register_worker(WorkerInfo("dx_bench", "h", 1, ("served",), now, now))
    executor = DurableExecutor(storage)
    executor.task(id="served", timeout_ms=1_000, run=lambda ctx, i: i)
    await executor.get_execution("te_000000000001")  # warm up

    async def scan() -> None:
        found = await storage.find_unserved_ready(now_ms=now, alive_within_ms=30_000, limit=100)
        assert found[0].ready_count == (ready + 999) // 1000

    figures = {
        "heartbeat": await timed(repeat, lambda: storage.heartbeat_worker("dx_bench", now_ms=now)),
        "scan": await timed(max(3, repeat // 10), scan),
        "read": await timed(repeat, lambda: executor.get_execution("te_000000000001")),
        "read+check": await timed(
            repeat, lambda: executor.get_execution("te_000000000001", check_workers=True)
        ),
    }
    cells = "  ".join(f"{key} {value:7.3f} ms" for key, value in figures.items())
    print(f"{name:9} {ready:>7} ready  {cells}", flush=True)
    await executor.shutdown()
    await storage.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ready", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    for ready in args.ready:
        await measure("memory", InMemoryStorage(), ready, args.repeat)
        with tempfile.TemporaryDirectory() as directory:
            await measure("sqlite", SQLiteStorage(Path(directory) / "b.db"), ready, args.repeat)
        from durable_execution.storage.postgres import PostgresStorage

        schema = f"bench_registry_{uuid.uuid4().hex[:8]}"
        try:
            await measure("postgres", PostgresStorage(DSN, schema=schema), ready, args.repeat)
        finally:
            import psycopg

            async with await psycopg.AsyncConnection.connect(DSN, autocommit=True) as conn:
                await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


if __name__ == "__main__":
    asyncio.run(main())
