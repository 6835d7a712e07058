"""A worker process: an executor on a shared storage, running until SIGTERM.

Usage: python worker.py STORAGE_URL NAME [--leeway-ms N] [--concurrency N] [--interval-ms N]
                        [--lease-ms N] [--max-lease-expiries N]
Prints "ready" once started; on SIGTERM shuts down gracefully and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from durable_execution import DurableExecutor
from durable_execution.storage import storage_from_url
from tests.workers.tasks import define_tasks


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("storage_url")
    parser.add_argument("name")
    parser.add_argument("--leeway-ms", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--interval-ms", type=int, default=20)
    parser.add_argument("--lease-ms", type=int, default=30_000)
    parser.add_argument("--max-lease-expiries", type=int, default=10)
    args = parser.parse_args()
    storage = storage_from_url(args.storage_url)
    if args.storage_url.startswith("postgresql"):
        # A fixed-size pool, opened at start: a worker SIGSTOPped in the middle of opening a
        # connection would see that attempt time out when it resumes (its clock jumped), and the
        # fencing test pauses workers at arbitrary moments.
        from durable_execution.storage.postgres import PostgresStorage

        storage = PostgresStorage.from_url(args.storage_url, min_pool_size=8, max_pool_size=8)
    executor = DurableExecutor(
        storage,
        expire_leeway_ms=args.leeway_ms,
        max_concurrent_task_executions=args.concurrency,
        background_process_interval_ms=args.interval_ms,
        shutdown_timeout_ms=5_000,
        lease_ms=args.lease_ms,
        max_lease_expiries=args.max_lease_expiries,
    )
    define_tasks(executor, args.name)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with executor:
        print("ready", flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
