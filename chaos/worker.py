"""A chaos worker process: one executor on the scenario's storage, running until SIGTERM.

    python -m chaos.worker STORAGE_URL NAME --run-log DIR [--lease-ms N] [--interval-ms N]
                           [--max-lease-expiries N] [--concurrency N] [--pool N]

Prints ``ready <executor id>`` once started; logs WARNING and above to stderr (the harness
keeps them in a file per worker); on SIGTERM shuts down gracefully and exits 0. It dies with
the harness (Linux: the parent-death signal), so a harness killed by a timeout leaves no
worker behind.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import logging
import os
import signal
import sys
from pathlib import Path

from durable_execution import DurableExecutor
from durable_execution.storage import storage_from_url
from durable_execution.storage.protocol import DurableStorage

from .runlog import RunLog
from .workload import define_tasks

PARENT_PID_VARIABLE = "CHAOS_HARNESS_PID"
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """SIGKILL this process when the harness that started it dies (Linux only)."""
    parent = os.environ.get(PARENT_PID_VARIABLE)
    if sys.platform != "linux" or parent is None:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != int(parent):  # the harness died before prctl took effect
        os._exit(1)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="chaos.worker")
    parser.add_argument("storage_url")
    parser.add_argument("name")
    parser.add_argument("--run-log", type=Path, required=True)
    parser.add_argument("--lease-ms", type=int, default=2_000)
    parser.add_argument("--leeway-ms", type=int, default=1_000)
    parser.add_argument("--interval-ms", type=int, default=50)
    parser.add_argument("--max-lease-expiries", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--pool", type=int, default=4)
    return parser.parse_args(argv)


def open_storage(url: str, pool: int) -> DurableStorage:
    """The storage of ``url``; on PostgreSQL a pool of a fixed size, opened at start (a worker
    SIGSTOPped while opening a connection would see that attempt time out when resumed)."""
    if url.startswith("postgres"):
        from durable_execution.storage.postgres import PostgresStorage

        return PostgresStorage.from_url(url, min_pool_size=pool, max_pool_size=pool)
    return storage_from_url(url)


async def main(argv: list[str]) -> None:
    args = parse_args(argv)
    die_with_parent()
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format=f"%(asctime)s {args.name} %(process)d %(levelname)s %(name)s: %(message)s",
    )
    storage = open_storage(args.storage_url, args.pool)
    executor = DurableExecutor(
        storage,
        lease_ms=args.lease_ms,
        expire_leeway_ms=args.leeway_ms,
        background_process_interval_ms=args.interval_ms,
        max_lease_expiries=args.max_lease_expiries,
        max_concurrent_task_executions=args.concurrency,
        shutdown_timeout_ms=5_000,
    )
    runs = RunLog(args.run_log)
    define_tasks(executor, runs)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with executor:
        print("ready", executor.executor_id, flush=True)
        await stop.wait()
    await storage.close()
    runs.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
