"""DBOS Transact on PostgreSQL: the workloads of bench/engine.py, one per run, one JSON line.

    python bench/peers/dbos.py WORKLOAD [--n N] [--mode default|fast]

DBOS is a library: ``DBOS.launch()`` in this process creates its system tables (schema ``dbos``)
and starts the queue threads, which are the worker. Jobs are async workflows enqueued on a DBOS
``Queue``; "done" is the workflow's row in ``dbos.workflow_status`` reading ``SUCCESS`` (which is
what a handle's ``get_result`` waits for). w3 is a parent workflow that enqueues 1,000 child
workflows on a queue and awaits their handles, the fan-out pattern of DBOS's queue tutorial; w4 is
one workflow of 100 steps. The w3/w4 parent is started with ``DBOS.start_workflow_async``, so it
runs at once instead of waiting for a queue poll.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the package it measures: take its folder off the import path so that
# `import dbos` finds the package, and put bench/ on it for the shared harness.
sys.path.remove(str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from dbos import DBOS, DBOSConfig, Queue
from peers._harness import (
    chain_result,
    latency_summary,
    main,
    stopwatch,
    w1_workloads,
    wait_for_count,
)

# Fast mode, from DBOS's queue reference: a queue's `polling_interval_sec` (default 1 s) is how
# often each process looks for new work on it, and a handle's `get_result(polling_interval_sec=...)`
# (default 1 s) how often it looks for the outcome. Short polls cut latency but cost throughput
# on 2 cores (each poll is a transaction), hence two profiles: "latency" for the one-at-a-time
# workloads (w2, w4), "throughput" for the bulk ones (w1, w3).
DEFAULT = {"queue_poll_s": 1.0, "result_poll_s": 1.0}
FAST = {
    "throughput": {"queue_poll_s": 0.05, "result_poll_s": 1.0},
    "latency": {"queue_poll_s": 0.005, "result_poll_s": 0.001},
}
QUEUE = "bench"
SUCCEEDED = "SELECT count(*) FROM dbos.workflow_status WHERE status = 'SUCCESS' AND name = '{}'"


def settings(fast: bool, profile: str) -> dict[str, float]:
    return FAST[profile] if fast else DEFAULT


@contextlib.asynccontextmanager
async def launched(dsn: str, queue_poll_s: float) -> AsyncIterator[Queue]:
    """Launch DBOS on ``dsn`` and register the queue ``QUEUE`` (workflows are declared above)."""
    config: DBOSConfig = {"name": "bench", "system_database_url": dsn, "log_level": "WARNING"}
    DBOS(config=config)
    DBOS.launch()
    try:
        queue = await DBOS.register_queue_async(QUEUE, polling_interval_sec=queue_poll_s)
        # DBOS looks for newly registered queues once a second: let it start this one's worker
        # thread before anything is timed
        await asyncio.sleep(1.5)
        yield queue
    finally:
        DBOS.destroy(destroy_registry=True)


@DBOS.workflow(name="noop")
async def noop() -> None:
    return None


@DBOS.step(name="increment")
async def increment(value: int) -> int:
    return value + 1


@DBOS.workflow(name="fan_out")
async def fan_out(n: int, result_poll_s: float) -> int:
    handles = [await DBOS.enqueue_workflow_async(QUEUE, noop) for _ in range(n)]
    for handle in handles:
        await handle.get_result(polling_interval_sec=result_poll_s)
    return await count_children(len(handles))


@DBOS.step(name="fan_in")
async def count_children(children: int) -> int:
    return children


@DBOS.workflow(name="chain")
async def chain(n: int) -> int:
    value = 0
    for _ in range(n):
        value = await increment(value)
    return value


async def w1(dsn: str, n: int, fast: bool, batch: bool) -> dict[str, Any]:
    knobs = settings(fast, "throughput")
    async with launched(dsn, knobs["queue_poll_s"]) as queue:
        with stopwatch() as elapsed:
            if batch:  # DBOS has no batch enqueue: issue them all at once
                await asyncio.gather(*(queue.enqueue_async(noop) for _ in range(n)))
            else:
                for _ in range(n):
                    await queue.enqueue_async(noop)
            await wait_for_count(dsn, SUCCEEDED.format("noop"), n)
    return {"tasks": n, "seconds": round(elapsed[0], 3), "tasks_per_s": round(n / elapsed[0])}


async def w2(dsn: str, n: int, fast: bool) -> dict[str, Any]:
    knobs = settings(fast, "latency")
    latencies: list[float] = []
    async with launched(dsn, knobs["queue_poll_s"]) as queue:
        for i in range(n + 10):
            with stopwatch() as elapsed:
                handle = await queue.enqueue_async(noop)
                await handle.get_result(polling_interval_sec=knobs["result_poll_s"])
            if i >= 10:
                latencies.append(elapsed[0] * 1000)
    return {"round_trips": n, **latency_summary(latencies)}


async def w3(dsn: str, n: int, fast: bool) -> dict[str, Any]:
    knobs = settings(fast, "throughput")
    async with launched(dsn, knobs["queue_poll_s"]):
        with stopwatch() as elapsed:
            handle = await DBOS.start_workflow_async(fan_out, n, knobs["result_poll_s"])
            result = await handle.get_result(polling_interval_sec=knobs["result_poll_s"])
    assert result == n, result
    return {"children": n, "seconds": round(elapsed[0], 3)}


async def w4(dsn: str, n: int, fast: bool) -> dict[str, Any]:
    knobs = settings(fast, "latency")
    async with launched(dsn, knobs["queue_poll_s"]):
        with stopwatch() as elapsed:
            handle = await DBOS.start_workflow_async(chain, n)
            result = await handle.get_result(polling_interval_sec=knobs["result_poll_s"])
    assert result == n, result
    return chain_result(n, elapsed[0])


if __name__ == "__main__":
    main(
        "dbos",
        {
            **w1_workloads(w1),
            "w2": w2,
            "w3": w3,
            "w4": w4,
        },
        skipped={},
    )
