"""Our engine's workloads. One workload per process run; the result is one JSON line.

    python bench/engine.py BACKEND WORKLOAD [--n N] [--batch B] [--switch-interval S]
                           [--gc default|freeze|off]

BACKEND: memory, sqlite, postgres. WORKLOAD: w1_batch, w1_single, w1_wait_all, w1_wait_each,
w1_gather,
w1_enqueue_gather, r1, w2, w3, w4, w6, memory, sleeping_memory (w6 and sleeping_memory need a
second process on the store: sqlite and postgres only).
``make bench`` runs the executor with its defaults; ``--batch`` (its
``max_task_executions_per_batch``), ``--switch-interval`` (Python's GIL switch interval,
``sys.setswitchinterval``) and ``--gc`` (``freeze``: ``gc.freeze()`` once everything is
imported, so that full collections skip the objects of the imported modules; ``off``:
``gc.disable()``, an upper bound) are for A/B runs by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    POSTGRES_DSN,
    chain_result,
    drop_schema,
    emit,
    latency_summary,
    micros_summary,
    rss_mb,
    stopwatch,
    unique_name,
)

from durable_execution import (
    ChildTask,
    DurableExecutor,
    DurableTask,
    DurableTaskExecution,
    DurableTaskHandle,
    TaskContext,
)
from durable_execution.storage.protocol import DurableStorage

Task = DurableTask[Any, None]
Handle = DurableTaskHandle[None]
Execution = DurableTaskExecution[None]
Enqueue = Callable[[DurableExecutor, Task, int], Awaitable[list[Handle]]]
Wait = Callable[[DurableExecutor, list[Handle]], Awaitable[list[Execution] | None]]


@asynccontextmanager
async def open_storage(backend: str) -> AsyncIterator[DurableStorage]:
    """A fresh, empty storage of ``backend``, removed afterwards."""
    if backend == "memory":
        from durable_execution.storage.memory import InMemoryStorage

        yield InMemoryStorage()
    elif backend == "sqlite":
        from durable_execution.storage.sqlite import SQLiteStorage

        with tempfile.TemporaryDirectory() as directory:
            storage = SQLiteStorage(os.path.join(directory, "bench.db"))
            yield storage
            await storage.close()
    elif backend == "postgres":
        from durable_execution.storage.postgres import PostgresStorage

        schema = unique_name("bench")
        storage = PostgresStorage(POSTGRES_DSN, schema=schema)
        try:
            yield storage
        finally:
            await storage.close()
            await drop_schema(schema)
    else:
        raise SystemExit(f"unknown backend {backend}")


def second_storage(storage: DurableStorage) -> DurableStorage:
    """Another storage on the database of ``storage``, as another process would open it (the
    in-memory storage, which nothing outside this one object can reach, is shared instead)."""
    from durable_execution.storage.memory import InMemoryStorage
    from durable_execution.storage.sqlite import SQLiteStorage

    if isinstance(storage, InMemoryStorage):
        return storage
    if isinstance(storage, SQLiteStorage):
        return SQLiteStorage(storage.path)
    from durable_execution.storage.postgres import PostgresStorage

    assert isinstance(storage, PostgresStorage), storage
    return PostgresStorage(POSTGRES_DSN, schema=storage.schema)


EXECUTOR_OPTIONS: dict[str, Any] = {"max_concurrent_task_executions": 1_000}


def make_executor(storage: DurableStorage) -> DurableExecutor:
    return DurableExecutor(storage, **EXECUTOR_OPTIONS)


async def noop(ctx: TaskContext, input: Any) -> None:
    return None


# How W1's variants enqueue their tasks and wait for them: W1 batch and one by one, and the
# patterns users write (each handle awaited in turn, the handles' waits gathered, single
# enqueues gathered, as concurrent web requests make them).
async def enqueue_batch(executor: DurableExecutor, task: Task, n: int) -> list[Handle]:
    return await executor.enqueue_tasks([(task, None)] * n)


async def enqueue_one_by_one(executor: DurableExecutor, task: Task, n: int) -> list[Handle]:
    return [await executor.enqueue_task(task) for _ in range(n)]


async def enqueue_gathered(executor: DurableExecutor, task: Task, n: int) -> list[Handle]:
    return list(await asyncio.gather(*(executor.enqueue_task(task) for _ in range(n))))


async def wait_all(executor: DurableExecutor, handles: list[Handle]) -> list[Execution] | None:
    """W1 batch's wait: until all are finished; the records are read after the clock stops."""
    await executor.wait_until_finished(handles)
    return None


async def wait_and_read_all(
    executor: DurableExecutor, handles: list[Handle]
) -> list[Execution] | None:
    """One ``wait_and_get_executions`` for all: waits, then reads every record."""
    return await executor.wait_and_get_executions(handles)


async def wait_each(executor: DurableExecutor, handles: list[Handle]) -> list[Execution] | None:
    return [await handle.wait_and_get_execution() for handle in handles]


async def wait_gathered(executor: DurableExecutor, handles: list[Handle]) -> list[Execution] | None:
    return list(await asyncio.gather(*(handle.wait_and_get_execution() for handle in handles)))


async def w1(
    storage: DurableStorage, n: int, enqueue: Enqueue, wait: Wait = wait_all
) -> dict[str, Any]:
    executor = make_executor(storage)
    task = executor.task(id="noop", timeout_ms=30_000, run=noop)
    async with executor:
        with stopwatch() as elapsed:
            handles = await enqueue(executor, task, n)
            executions = await wait(executor, handles)
        if executions is None:
            executions = await executor.wait_and_get_executions(handles)
    assert all(e.status.value == "completed" for e in executions)
    return {"tasks": n, "seconds": round(elapsed[0], 3), "tasks_per_s": round(n / elapsed[0])}


async def read_micros(handles: list[Handle], wait: bool) -> list[float]:
    """How long each read took, in µs: ``wait_and_get_execution`` of each handle in turn, or
    its ``get_execution``."""
    micros: list[float] = []
    for handle in handles:
        start = time.perf_counter()
        execution = await (handle.wait_and_get_execution() if wait else handle.get_execution())
        micros.append((time.perf_counter() - start) * 1e6)
        assert execution.status.value == "completed", execution
    return micros


async def r1(storage: DurableStorage, n: int) -> dict[str, Any]:
    """Reads of ``n`` finished executions, one at a time. Warm: from the executor that ran
    them (each read twice: ``get_execution``, then ``wait_and_get_execution``). Cold: from a
    second executor on the same database (its own storage object, except in memory) that did
    not run them and got their handles from ``get_task_handle``, as after a restart, then
    forgot what those reads told it (so that each read reaches the storage):
    ``get_execution`` on one half, ``wait_and_get_execution`` on the other, so that neither
    read follows the other."""
    executor = make_executor(storage)
    task = executor.task(id="noop", timeout_ms=30_000, run=noop)
    async with executor:
        handles = await executor.enqueue_tasks([(task, None)] * n)
        await executor.wait_and_get_executions(handles)
        get_warm = await read_micros(handles, wait=False)
        wait_warm = await read_micros(handles, wait=True)
        other_storage = second_storage(storage)
        other = make_executor(other_storage)
        other_task = other.task(id="noop", timeout_ms=30_000, run=noop)
        try:
            async with other:
                ids = [handle.execution_id for handle in handles]
                cold = [await other.get_task_handle(other_task, i) for i in ids]
                other._engine.finished.clear()  # what get_task_handle read: not cold any more
                get_cold = await read_micros(cold[: n // 2], wait=False)
                wait_cold = await read_micros(cold[n // 2 :], wait=True)
        finally:
            if other_storage is not storage:
                await other_storage.close()
    return {
        "reads": n,
        **micros_summary(get_warm, "get"),
        **micros_summary(wait_warm, "wait"),
        **micros_summary(get_cold, "cold_get"),
        **micros_summary(wait_cold, "cold_wait"),
    }


async def w2(storage: DurableStorage, n: int) -> dict[str, Any]:
    executor = make_executor(storage)
    task = executor.task(id="noop", timeout_ms=30_000, run=noop)
    latencies: list[float] = []
    async with executor:
        for i in range(n + 10):
            start = time.perf_counter()
            handle = await executor.enqueue_task(task)
            await handle.wait_and_get_execution()
            if i >= 10:  # the first few warm up connections and caches
                latencies.append((time.perf_counter() - start) * 1000)
    return {"round_trips": n, **latency_summary(latencies)}


async def w3(storage: DurableStorage, n: int) -> dict[str, Any]:
    executor = make_executor(storage)
    child = executor.task(id="child", timeout_ms=30_000, run=noop)
    parent = executor.parent_task(
        id="fan_out",
        timeout_ms=30_000,
        run_parent=lambda ctx, i: {"output": None, "children": [ChildTask(child)] * n},
        on_run_and_children_complete={
            "id": "fan_in",
            "timeout_ms": 30_000,
            "run": lambda ctx, v: len(v.children_outputs),
        },
    )
    async with executor:
        with stopwatch() as elapsed:
            handle = await executor.enqueue_task(parent)
            execution = await handle.wait_and_get_execution()
    assert execution.output == n, execution
    return {"children": n, "seconds": round(elapsed[0], 3)}


async def w4(storage: DurableStorage, n: int) -> dict[str, Any]:
    executor = make_executor(storage)

    async def step(ctx: TaskContext, value: int) -> int:
        return value + 1

    steps = [executor.task(id=f"step{i}", timeout_ms=30_000, run=step) for i in range(n)]
    chain = executor.sequential_tasks(*steps, id="chain")
    async with executor:
        with stopwatch() as elapsed:
            handle = await executor.enqueue_task(chain, 0)
            execution = await handle.wait_and_get_execution()
    assert execution.output == n, execution
    return chain_result(n, elapsed[0])


async def memory_growth(storage: DurableStorage, n: int) -> dict[str, Any]:
    executor = make_executor(storage)
    task = executor.task(id="noop", timeout_ms=30_000, run=noop)

    async def run(count: int) -> None:
        for start in range(0, count, 5_000):
            handles = await executor.enqueue_tasks([(task, None)] * min(5_000, count - start))
            await executor.wait_and_get_executions(handles)

    async with executor:
        await run(1_000)
        after_small = rss_mb()
        await run(n - 1_000)
        after_large = rss_mb()
    return {
        "rss_mb_after_1k": round(after_small, 1),
        f"rss_mb_after_{n // 1000}k": round(after_large, 1),
        "growth_mb": round(after_large - after_small, 1),
    }


# -- W6: sleeping executions woken up from another process -------------------------------------

PEER = Path(__file__).resolve().parent / "sleeping_peer.py"


def storage_url(storage: DurableStorage) -> str | None:
    """The URL another process opens the store of ``storage`` with (``None``: in memory)."""
    from durable_execution.storage.sqlite import SQLiteStorage

    if isinstance(storage, SQLiteStorage):
        return f"sqlite:///{storage.path}"
    schema = getattr(storage, "schema", None)
    return None if schema is None else f"{POSTGRES_DSN}?schema={schema}"


async def run_peer(action: str, url: str, n: int) -> dict[str, Any]:
    """Run ``bench/sleeping_peer.py`` in a process of its own; its JSON result."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(PEER), action, url, str(n), stdout=asyncio.subprocess.PIPE
    )
    stdout, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{PEER.name} {action} failed ({process.returncode})")
    result: dict[str, Any] = json.loads(stdout.decode().splitlines()[-1])
    return result


async def read_records(storage: DurableStorage, ids: list[str]) -> list[Any]:
    records = []
    for first in range(0, len(ids), 1_000):
        records += await storage.get_executions(ids[first : first + 1_000])
    return records


async def w6(storage: DurableStorage, n: int) -> dict[str, Any]:
    """``n`` orders, each waiting for a sleeping approval that another process wakes up (50
    wake-ups at a time, as concurrent webhooks): wake-ups/s, and from a child's wake-up to its
    parent's completion (both times as the storage wrote them)."""
    url = storage_url(storage)
    if url is None:
        return {"skipped": "the in-memory storage cannot be reached from another process"}
    executor = make_executor(storage)
    approval = executor.sleeping_task(id="approval", timeout_ms=3_600_000)
    order = executor.parent_task(
        id="order",
        timeout_ms=30_000,
        run_parent=lambda ctx, i: {"output": None, "children": [ChildTask(approval, i)]},
    )
    async with executor:
        handles: list[Any] = []
        for first in range(0, n, 5_000):
            count = min(5_000, n - first)
            handles += await executor.enqueue_tasks(
                [(order, f"o-{first + i}") for i in range(count)]
            )
        ids = [handle.execution_id for handle in handles]
        for _ in range(3_000):  # every order sleeps before the wake-ups start (10 min at most)
            if all(r.child_execution_ids for r in await read_records(storage, ids)):
                break
            await asyncio.sleep(0.2)
        peer = await run_peer("wake", url, n)
        await executor.wait_until_finished(handles, timeout=600)
        parents = await read_records(storage, ids)
    children = {
        c.execution_id: c
        for c in await read_records(storage, [p.child_execution_ids[0] for p in parents])
    }
    latencies = [
        float(p.finished_at_ms - children[p.child_execution_ids[0]].finished_at_ms) for p in parents
    ]
    assert all(p.status.value == "completed" for p in parents)
    return {
        "sleeping": n,
        "wakeups_per_s": peer["wakeups_per_s"],
        "wake_seconds": peer["seconds"],
        "wake_to_parent_p50_ms": latency_summary(latencies)["p50_ms"],
        "wake_to_parent_p99_ms": latency_summary(latencies)["p99_ms"],
    }


async def sleeping_memory(storage: DurableStorage, n: int) -> dict[str, Any]:
    """The executor's RSS before and after another process stored ``n`` sleeping executions
    (of a task it does not run), each after 1,000 tasks and 2 s of its background loops."""
    url = storage_url(storage)
    if url is None:
        return {"skipped": "the in-memory storage holds its executions in this process"}
    executor = make_executor(storage)
    task = executor.task(id="noop", timeout_ms=30_000, run=noop)

    async def settle() -> float:
        handles = await executor.enqueue_tasks([(task, None)] * 1_000)
        await executor.wait_and_get_executions(handles)
        await asyncio.sleep(2)  # the expiry loop passes over the sleeping ones a few times
        gc.collect()
        return rss_mb()

    async with executor:
        await settle()
        first = await settle()
        before = await settle()  # the growth from ``first``: the noise, with nothing inserted
        await run_peer("insert", url, n)
        after = await settle()
    return {
        "sleeping": n,
        "rss_mb_without": round(before, 1),
        "rss_mb_with": round(after, 1),
        "growth_mb": round(after - before, 1),
        "noise_mb": round(before - first, 1),
    }


WORKLOADS = {
    "w1_batch": (lambda s, n: w1(s, n, enqueue_batch), 5_000),
    "w1_single": (lambda s, n: w1(s, n, enqueue_one_by_one), 5_000),
    "w1_wait_all": (lambda s, n: w1(s, n, enqueue_batch, wait_and_read_all), 5_000),
    "w1_wait_each": (lambda s, n: w1(s, n, enqueue_batch, wait_each), 5_000),
    "w1_gather": (lambda s, n: w1(s, n, enqueue_batch, wait_gathered), 5_000),
    "w1_enqueue_gather": (lambda s, n: w1(s, n, enqueue_gathered), 5_000),
    "r1": (r1, 2_000),
    "w2": (w2, 200),
    "w3": (w3, 1_000),
    "w4": (w4, 100),
    "memory": (memory_growth, 100_000),
    "w6": (w6, 10_000),
    "sleeping_memory": (sleeping_memory, 100_000),
}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("backend", choices=["memory", "sqlite", "postgres"])
    parser.add_argument("workload", choices=sorted(WORKLOADS))
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--switch-interval", type=float, default=None)
    parser.add_argument("--gc", choices=["default", "freeze", "off"], default="default")
    args = parser.parse_args()
    settings: dict[str, Any] = {}
    if args.batch is not None:
        EXECUTOR_OPTIONS["max_task_executions_per_batch"] = settings["batch"] = args.batch
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
        settings["switch_interval"] = args.switch_interval
    workload, default_n = WORKLOADS[args.workload]
    async with open_storage(args.backend) as storage:
        if args.gc == "freeze":  # the storage's driver is imported by now
            gc.freeze()
        elif args.gc == "off":
            gc.disable()
        if args.gc != "default":
            settings["gc"] = args.gc
        result = await workload(storage, args.n or default_n)
    emit(
        {
            "engine": "durable_execution",
            "backend": args.backend,
            "workload": args.workload,
            **settings,
            **result,
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
