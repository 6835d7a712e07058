"""Absurd (absurd-sdk) on PostgreSQL: the workloads of bench/engine.py, one per run, one JSON line.

    python bench/peers/absurd.py WORKLOAD [--n N] [--mode default|fast]

Setup as Absurd documents it: ``absurdctl init`` applies the SQL schema bundled in the
absurdctl package (it runs ``psql``), then the SDK creates the queues. Workers are
``AsyncAbsurd.start_worker`` as asyncio tasks in this process, one per queue, each on its client's
single connection; tasks are spawned through another client (its own connection). "Done" is the
task's row in ``absurd.t_<queue>`` reading ``completed`` (what ``await_task_result`` reads too).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from absurd_sdk import AsyncAbsurd, AsyncTaskContext
from peers._harness import (
    chain_result,
    latency_summary,
    main,
    poll_until,
    stopwatch,
    w1_workloads,
    wait_for_count,
)

# Fast mode: the documented knobs of `start_worker` are `concurrency` (default 1), `batch_size`
# (tasks claimed per poll, default = concurrency) and `poll_interval` (sleep when the queue is
# empty, default 0.25 s). A client is a single connection, so concurrency mostly buys claiming
# several tasks per round trip: that helps the bulk workloads (w1, w3: "throughput") and costs the
# one-at-a-time ones (w2, w4: "latency"), which poll harder instead. `await_task_result` polls
# with a backoff from 50 ms up to 1 s; fast mode waits with `fetch_task_result` every ms instead
# (inside the w3 parent, the durable `ctx.await_task_result` stays: it is the join).
FAST = {
    "throughput": {"concurrency": 10, "batch_size": 10, "poll_interval": 0.005},
    "latency": {"concurrency": 1, "poll_interval": 0.001},
}
CHILD_QUEUE = "children"


def completed(queue: str) -> str:
    return f"SELECT count(*) FROM absurd.t_{queue} WHERE state = 'completed'"


def init_schema(dsn: str) -> None:
    absurdctl = shutil.which("absurdctl", path=str(Path(sys.executable).parent)) or "absurdctl"
    subprocess.run([absurdctl, "init", "-d", dsn], check=True, capture_output=True)


def worker_options(fast: bool, profile: str) -> dict[str, Any]:
    return FAST[profile] if fast else {}


Register = Callable[[dict[str, AsyncAbsurd]], None]


@contextlib.asynccontextmanager
async def running(
    dsn: str, options: dict[str, Any], queues: list[str], register: Register
) -> AsyncIterator[AsyncAbsurd]:
    """Schema, queues, and one running worker per queue; yield a client to spawn with."""
    await asyncio.to_thread(init_schema, dsn)
    workers = {queue: AsyncAbsurd(dsn, queue_name=queue) for queue in queues}
    for queue, client in workers.items():
        await client.create_queue(queue)
    register(workers)
    loops = [asyncio.create_task(client.start_worker(**options)) for client in workers.values()]
    producer = AsyncAbsurd(dsn, queue_name=queues[0])
    await producer.list_queues()  # connect now: concurrent first calls would each connect
    try:
        yield producer
    finally:
        for client in workers.values():
            client.stop_worker()
        await asyncio.gather(*loops)
        for client in [producer, *workers.values()]:
            await client.close()


async def wait_done(client: AsyncAbsurd, task_id: str, fast: bool) -> Any:
    """The task's result once it completed: the SDK's own wait, or (fast) a 1 ms poll."""
    if not fast:
        snapshot = await client.await_task_result(task_id, timeout=600)
    else:

        async def finished() -> bool:
            found = await client.fetch_task_result(task_id)
            return found is not None and found.state in ("completed", "failed", "cancelled")

        await poll_until(finished)
        snapshot = await client.fetch_task_result(task_id)
    assert snapshot is not None
    assert snapshot.state == "completed", snapshot
    return snapshot.result


async def noop(params: Any, ctx: AsyncTaskContext) -> None:
    return None


def only_noop(workers: dict[str, AsyncAbsurd]) -> None:
    workers["default"].register_task("noop")(noop)


async def w1(dsn: str, n: int, fast: bool, batch: bool) -> dict[str, Any]:
    async with running(dsn, worker_options(fast, "throughput"), ["default"], only_noop) as producer:
        with stopwatch() as elapsed:
            if batch:  # Absurd has no batch spawn: issue them all at once on one connection
                await asyncio.gather(
                    *(producer.spawn("noop", {}, queue="default") for _ in range(n))
                )
            else:
                for _ in range(n):
                    await producer.spawn("noop", {}, queue="default")
            await wait_for_count(dsn, completed("default"), n)
    return {"tasks": n, "seconds": round(elapsed[0], 3), "tasks_per_s": round(n / elapsed[0])}


async def w2(dsn: str, n: int, fast: bool) -> dict[str, Any]:
    latencies: list[float] = []
    async with running(dsn, worker_options(fast, "latency"), ["default"], only_noop) as producer:
        for i in range(n + 10):
            with stopwatch() as elapsed:
                spawned = await producer.spawn("noop", {}, queue="default")
                await wait_done(producer, spawned["task_id"], fast)
            if i >= 10:
                latencies.append(elapsed[0] * 1000)
    return {"round_trips": n, **latency_summary(latencies)}


async def w3(dsn: str, n: int, fast: bool) -> dict[str, Any]:
    def register(workers: dict[str, AsyncAbsurd]) -> None:
        parent_client = workers["default"]
        workers[CHILD_QUEUE].register_task("child")(noop)

        @parent_client.register_task("fan-out")
        async def fan_out(params: Any, ctx: AsyncTaskContext) -> int:
            async def spawn_children() -> list[str]:
                return [
                    str((await parent_client.spawn("child", {}, queue=CHILD_QUEUE))["task_id"])
                    for _ in range(n)
                ]

            # spawned inside a step, so a retried parent finds its children instead of
            # spawning new ones; children live on another queue, as await_task_result requires
            children = await ctx.step("spawn-children", spawn_children)
            for child in children:
                await ctx.await_task_result(child, queue_name=CHILD_QUEUE)

            async def fan_in() -> int:
                return len(children)

            return await ctx.step("fan-in", fan_in)

    async with running(
        dsn, worker_options(fast, "throughput"), ["default", CHILD_QUEUE], register
    ) as producer:
        with stopwatch() as elapsed:
            spawned = await producer.spawn("fan-out", {}, queue="default")
            result = await wait_done(producer, spawned["task_id"], fast)
    assert result == n, result
    return {"children": n, "seconds": round(elapsed[0], 3)}


async def w4(dsn: str, n: int, fast: bool) -> dict[str, Any]:
    def register(workers: dict[str, AsyncAbsurd]) -> None:
        @workers["default"].register_task("chain")
        async def chain(params: Any, ctx: AsyncTaskContext) -> int:
            value = 0
            for i in range(n):

                async def step(value: int = value) -> int:
                    return value + 1

                value = await ctx.step(f"step{i}", step)
            return value

    async with running(dsn, worker_options(fast, "latency"), ["default"], register) as producer:
        with stopwatch() as elapsed:
            spawned = await producer.spawn("chain", {}, queue="default")
            result = await wait_done(producer, spawned["task_id"], fast)
    assert result == n, result
    return chain_result(n, elapsed[0])


if __name__ == "__main__":
    main(
        "absurd",
        {
            **w1_workloads(w1),
            "w2": w2,
            "w3": w3,
            "w4": w4,
        },
        skipped={},
    )
