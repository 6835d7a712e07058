"""pgqueuer on PostgreSQL: the workloads of bench/engine.py, one per run, one JSON line.

    python bench/peers/pgqueuer.py WORKLOAD [--n N] [--mode default|fast]

The worker is pgqueuer's standard one (``PgQueuer.run``: queue manager plus scheduler) on its own
asyncpg connection, as an asyncio task in this process; jobs are enqueued through ``Queries`` on
a second connection. "Done" is a ``successful`` row for the job in ``pgqueuer_log`` (what its
``CompletionWatcher``, used for w2, reads too). pgqueuer has no parent/child join, so w3 is
skipped; w4 is a chain of jobs, each enqueuing the next from inside its own body.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the package it measures: take its folder off the import path so that
# `import pgqueuer` finds the package, and put bench/ on it for the shared harness.
sys.path.remove(str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import asyncpg
from peers._harness import (
    chain_result,
    latency_summary,
    main,
    stopwatch,
    w1_workloads,
    wait_for_count,
)
from pgqueuer import AsyncpgDriver, Job, PgQueuer, Queries
from pgqueuer.core.completion import CompletionWatcher

# Fast mode, from pgqueuer's "Performance Tuning" guide: raise `batch_size` (jobs dequeued per
# round trip, default 10) for short jobs. The same size also bounds the buffer of finished jobs
# written to pgqueuer_log (flushed when full or every 0.1 s), so the one-at-a-time workloads
# (w2, w4: "latency") are fastest with 1, the bulk one (w1: "throughput") with a large batch.
# `dequeue_timeout` (default 30 s) is the polling fallback when a NOTIFY is missed;
# CompletionWatcher's `debounce` (default 50 ms, "Completion Tracking" guide) delays every
# status check it makes.
FAST_RUN = {
    "throughput": {"batch_size": 100, "dequeue_timeout": timedelta(seconds=1)},
    "latency": {"batch_size": 1, "dequeue_timeout": timedelta(seconds=1)},
}
FAST_DEBOUNCE = timedelta(0)
SUCCESSFUL = "SELECT count(*) FROM pgqueuer_log WHERE status = 'successful'"


Handlers = Callable[[Queries], dict[str, Callable[[Job], Awaitable[None]]]]


@contextlib.asynccontextmanager
async def running(
    dsn: str, run_options: dict[str, Any], handlers: Handlers
) -> AsyncIterator[Queries]:
    """Install pgqueuer's schema, run a worker for ``handlers`` here; yield the producer."""
    worker_conn = await asyncpg.connect(dsn)
    producer_conn = await asyncpg.connect(dsn)
    producer = Queries(AsyncpgDriver(producer_conn))
    await producer.install()
    pgq = PgQueuer.from_asyncpg_connection(worker_conn)
    for name, handler in handlers(producer).items():
        pgq.entrypoint(name)(handler)
    worker = asyncio.create_task(pgq.run(**run_options))
    try:
        yield producer
    finally:
        pgq.shutdown.set()
        await worker
        await worker_conn.close()
        await producer_conn.close()


async def noop(job: Job) -> None:
    return None


def options(fast: bool, kind: str) -> dict[str, Any]:
    return FAST_RUN[kind] if fast else {}


async def w1(dsn: str, n: int, fast: bool, batch: bool) -> dict[str, Any]:
    async with running(dsn, options(fast, "throughput"), lambda _: {"noop": noop}) as producer:
        with stopwatch() as elapsed:
            if batch:
                await producer.enqueue(["noop"] * n, [None] * n, [0] * n)
            else:
                for _ in range(n):
                    await producer.enqueue("noop", None)
            await wait_for_count(dsn, SUCCESSFUL, n)
    return {"tasks": n, "seconds": round(elapsed[0], 3), "tasks_per_s": round(n / elapsed[0])}


async def w2(dsn: str, n: int, fast: bool) -> dict[str, Any]:
    latencies: list[float] = []
    async with running(dsn, options(fast, "latency"), lambda _: {"noop": noop}) as producer:
        debounce = {"debounce": FAST_DEBOUNCE} if fast else {}
        async with CompletionWatcher(producer.driver, queries=producer, **debounce) as watcher:
            for i in range(n + 10):
                with stopwatch() as elapsed:
                    [job_id] = await producer.enqueue("noop", None)
                    status = await watcher.wait_for(job_id)
                assert status == "successful", status
                if i >= 10:
                    latencies.append(elapsed[0] * 1000)
    return {"round_trips": n, **latency_summary(latencies)}


async def w4(dsn: str, n: int, fast: bool) -> dict[str, Any]:
    def chain(producer: Queries) -> dict[str, Callable[[Job], Awaitable[None]]]:
        async def link(job: Job) -> None:
            remaining = int(job.payload or b"0")
            if remaining > 1:
                await producer.enqueue("link", str(remaining - 1).encode())

        return {"link": link}

    async with running(dsn, options(fast, "latency"), chain) as producer:
        with stopwatch() as elapsed:
            await producer.enqueue("link", str(n).encode())
            await wait_for_count(dsn, SUCCESSFUL, n)
    return chain_result(n, elapsed[0])


if __name__ == "__main__":
    main(
        "pgqueuer",
        {
            **w1_workloads(w1),
            "w2": w2,
            "w4": w4,
        },
        skipped={"w3": "no fan-out/join primitive"},
    )
