"""What reading one finished execution costs, layer by layer: the storage's
``get_executions([id])``, the record's decoding (``DurableTaskExecution.from_record``), and
``DurableExecutor.get_execution`` / the handle's ``get_execution`` on top.

    python bench/read_costs.py [sqlite|postgres ...] [--n 3000] [--repeat 3] [--busy]

Each line is µs per read, p50 and p99 over ``--n`` reads of one execution, medians over
``--repeat`` alternated rounds. ``--busy`` also runs a writer beside the reads (enqueues of
10 executions in a loop, each awaited), to show whether a read queues behind writes. A
diagnostic, not part of ``make bench`` (R1 there measures the user's path).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import percentile
from engine import open_storage

from durable_execution import DurableExecutor, DurableTaskExecution, TaskContext
from durable_execution.storage.protocol import DurableStorage


async def noop(ctx: TaskContext, input: Any) -> dict[str, Any]:
    return {"answer": 42, "input": input}


async def timed(n: int, read: Callable[[], Awaitable[Any]]) -> list[float]:
    """µs of each of ``n`` calls of ``read`` (after 50 to warm up)."""
    for _ in range(50):
        await read()
    micros: list[float] = []
    for _ in range(n):
        start = time.perf_counter()
        await read()
        micros.append((time.perf_counter() - start) * 1e6)
    return micros


@contextlib.asynccontextmanager
async def busy_writer(executor: DurableExecutor, task: Any, on: bool) -> AsyncIterator[None]:
    """Enqueues of 10 executions in a loop while the block runs (when ``on``)."""
    if not on:
        yield
        return
    stop = asyncio.Event()

    async def write() -> None:
        while not stop.is_set():
            await executor.enqueue_tasks([(task, {"x": 1})] * 10)

    writer = asyncio.create_task(write())
    await asyncio.sleep(0.05)  # let it start
    try:
        yield
    finally:
        stop.set()
        await writer


async def one_round(backend: str, n: int, busy: bool) -> dict[str, list[float]]:
    async with open_storage(backend) as storage:
        return await measure(storage, n, busy)


async def measure(storage: DurableStorage, n: int, busy: bool) -> dict[str, list[float]]:
    executor = DurableExecutor(storage, max_concurrent_task_executions=1_000)
    task = executor.task(id="noop", timeout_ms=30_000, run=noop)
    async with executor:
        handle = await executor.enqueue_task(task, {"x": [1, 2, 3], "name": "read me"})
        await handle.wait_and_get_execution()
        execution_id = handle.execution_id
        [record] = await storage.get_executions([execution_id])
        serializer = executor.options.serializer

        async def decode() -> DurableTaskExecution[Any]:
            return DurableTaskExecution.from_record(record, serializer)

        results: dict[str, list[float]] = {}
        async with busy_writer(executor, task, busy):
            results["storage.get_executions([id])"] = await timed(
                n, lambda: storage.get_executions([execution_id])
            )
            results["from_record (decoding only)"] = await timed(n, decode)
            results["executor.get_execution(id)"] = await timed(
                n, lambda: executor.get_execution(execution_id)
            )
            results["handle.get_execution()"] = await timed(n, handle.get_execution)
            results["handle.wait_and_get_execution()"] = await timed(
                n, handle.wait_and_get_execution
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("backends", nargs="*", default=["sqlite", "postgres"])
    parser.add_argument("--n", type=int, default=3_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--busy", action="store_true")
    args = parser.parse_args()
    for backend in args.backends:
        p50s: dict[str, list[float]] = {}
        p99s: dict[str, list[float]] = {}
        for _ in range(args.repeat):
            for label, micros in asyncio.run(one_round(backend, args.n, args.busy)).items():
                p50s.setdefault(label, []).append(percentile(micros, 0.50))
                p99s.setdefault(label, []).append(percentile(micros, 0.99))
        busy = ", beside a busy writer" if args.busy else ""
        print(f"{backend}: µs per read, medians of {args.repeat} rounds of {args.n}{busy}")
        for label in p50s:
            p50, p99 = statistics.median(p50s[label]), statistics.median(p99s[label])
            print(f"  {label:36s} p50 {p50:8.1f}  p99 {p99:8.1f}")


if __name__ == "__main__":
    main()
