"""procrastinate on PostgreSQL: the workloads of bench/engine.py, one per run, one JSON line.

    python bench/peers/procrastinate.py WORKLOAD [--n N] [--mode default|fast]

One worker runs in this process (``App.run_worker_async`` as an asyncio task, as procrastinate's
"inside an application" how-to shows). "Done" is the job's row in ``procrastinate_jobs`` reading
``succeeded``. procrastinate has no parent/child join, so w3 is skipped; w4 is a chain of jobs,
each deferring the next from inside its own body.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the package it measures: take its folder off the import path so that
# `import procrastinate` finds the package, and put bench/ on it for the shared harness.
sys.path.remove(str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from peers._harness import (
    chain_result,
    latency_summary,
    main,
    poll_until,
    stopwatch,
    w1_workloads,
    wait_for_count,
)
from procrastinate import App, PsycopgConnector
from procrastinate.jobs import Status

# Fast mode. procrastinate's "Execute multiple jobs at the same time" how-to runs async tasks with
# `run_worker(concurrency=30)`; each running job holds a pooled connection while it is fetched and
# finished, so the connector's pool (keyword arguments go to psycopg's AsyncConnectionPool, 4
# connections by default) grows with it. `fetch_job_polling_interval` (default 5 s) is the
# documented fallback poll behind LISTEN/NOTIFY: a worker that misses a wakeup (seen here between
# one job's end and the next fetch) waits that long. Concurrency only helps bulk work, so the
# one-at-a-time workloads (w2, w4) keep a single sub-worker.
FAST = {
    "throughput": {"worker": {"concurrency": 10}, "pool": {"min_size": 12, "max_size": 12}},
    "latency": {"worker": {"concurrency": 1}, "pool": {}},
}
FAST_POLL_S = 0.05
SUCCEEDED = "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"


def make_app(dsn: str, fast: bool, profile: str) -> App:
    pool: dict[str, Any] = FAST[profile]["pool"] if fast else {}
    return App(connector=PsycopgConnector(conninfo=dsn, **pool))


@contextlib.asynccontextmanager
async def running(app: App, fast: bool, profile: str) -> AsyncIterator[None]:
    """Open the app, install procrastinate's schema, and keep one worker running inside."""
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        options: dict[str, Any] = {}
        if fast:
            options = {**FAST[profile]["worker"], "fetch_job_polling_interval": FAST_POLL_S}
        worker = asyncio.create_task(app.run_worker_async(install_signal_handlers=False, **options))
        try:
            yield
        finally:
            worker.cancel()  # the documented way to stop an in-process worker gracefully
            with contextlib.suppress(asyncio.CancelledError):
                await worker


async def w1(dsn: str, n: int, fast: bool, batch: bool) -> dict[str, Any]:
    app = make_app(dsn, fast, "throughput")

    @app.task(name="noop")
    async def noop() -> None:
        return None

    async with running(app, fast, "throughput"):
        with stopwatch() as elapsed:
            if batch:
                await noop.batch_defer_async(*([{}] * n))
            else:
                for _ in range(n):
                    await noop.defer_async()
            await wait_for_count(dsn, SUCCEEDED, n)
    return {"tasks": n, "seconds": round(elapsed[0], 3), "tasks_per_s": round(n / elapsed[0])}


async def w2(dsn: str, n: int, fast: bool) -> dict[str, Any]:
    app = make_app(dsn, fast, "latency")

    @app.task(name="noop")
    async def noop() -> None:
        return None

    latencies: list[float] = []
    async with running(app, fast, "latency"):
        for i in range(n + 10):
            with stopwatch() as elapsed:
                job_id = await noop.defer_async()

                async def succeeded(job_id: int = job_id) -> bool:
                    return await app.job_manager.get_job_status_async(job_id) == Status.SUCCEEDED

                # procrastinate has no "wait for this job" call: ask for its status every ms
                await poll_until(succeeded)
            if i >= 10:
                latencies.append(elapsed[0] * 1000)
    return {"round_trips": n, **latency_summary(latencies)}


async def w4(dsn: str, n: int, fast: bool) -> dict[str, Any]:
    app = make_app(dsn, fast, "latency")

    @app.task(name="link")
    async def link(remaining: int) -> None:
        if remaining > 1:
            await link.defer_async(remaining=remaining - 1)

    async with running(app, fast, "latency"):
        with stopwatch() as elapsed:
            await link.defer_async(remaining=n)
            await wait_for_count(dsn, SUCCEEDED, n)
    return chain_result(n, elapsed[0])


if __name__ == "__main__":
    main(
        "procrastinate",
        {
            **w1_workloads(w1),
            "w2": w2,
            "w4": w4,
        },
        skipped={"w3": "no fan-out/join primitive"},
    )
