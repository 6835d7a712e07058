"""What every peer script shares: the command line, a scratch database per run, waiting helpers.

A peer script calls :func:`main` with its workloads; each workload is an async function
``(dsn, n, fast) -> result dict`` that runs against a freshly created, empty database whose URL is
``dsn``. The database is dropped afterwards, whatever happened.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import (
    POSTGRES_DSN,
    chain_result,
    emit,
    latency_summary,
    stopwatch,
    unique_name,
)

__all__ = [
    "Workload",
    "chain_result",
    "latency_summary",
    "main",
    "poll_until",
    "stopwatch",
    "wait_for_count",
    "w1_workloads",
]

DEFAULT_N = {"w1_batch": 5_000, "w1_single": 5_000, "w2": 200, "w3": 1_000, "w4": 100}
RUN_TIMEOUT_S = 1_200.0
# How often the harness itself looks at a peer's job table (w1 totals, or w2 where a peer offers
# no way to wait for one job): often enough that it adds at most a few ms to a measurement.
COUNT_POLL_S = 0.01
RESULT_POLL_S = 0.001

Workload = Callable[[str, int, bool], Awaitable[dict[str, Any]]]


def w1_workloads(w1: Callable[..., Awaitable[dict[str, Any]]]) -> dict[str, Workload]:
    """W1's two variants from one ``w1(dsn, n, fast, *, batch)``."""
    return {
        "w1_batch": lambda dsn, n, fast: w1(dsn, n, fast, batch=True),
        "w1_single": lambda dsn, n, fast: w1(dsn, n, fast, batch=False),
    }


@asynccontextmanager
async def scratch_database(prefix: str) -> AsyncIterator[str]:
    """Create an empty database next to ``POSTGRES_DSN``; yield its URL; drop it afterwards."""
    name = unique_name(prefix)
    async with await psycopg.AsyncConnection.connect(POSTGRES_DSN, autocommit=True) as admin:
        await admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlsplit(POSTGRES_DSN)._replace(path=f"/{name}").geturl()
    finally:
        async with await psycopg.AsyncConnection.connect(POSTGRES_DSN, autocommit=True) as admin:
            drop = "DROP DATABASE IF EXISTS {} WITH (FORCE)"
            await admin.execute(sql.SQL(drop).format(sql.Identifier(name)))


async def wait_for_count(
    dsn: str, query: str, n: int, interval_s: float = COUNT_POLL_S, timeout_s: float = 600.0
) -> None:
    """Poll ``query`` (one integer) on a connection of its own until it reaches ``n``."""
    deadline = time.monotonic() + timeout_s
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        while True:
            row = await (await conn.execute(query)).fetchone()
            if row is not None and row[0] >= n:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{query!r} still at {row} after {timeout_s}s, wanted {n}")
            await asyncio.sleep(interval_s)


async def poll_until(
    check: Callable[[], Awaitable[bool]], interval_s: float = RESULT_POLL_S, timeout_s: float = 60.0
) -> None:
    """Await ``check()`` every ``interval_s`` until it returns True."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"still not done after {timeout_s}s")
        await asyncio.sleep(interval_s)


def main(engine: str, workloads: dict[str, Workload], skipped: dict[str, str]) -> None:
    """Parse ``WORKLOAD [--n N] [--mode default|fast]``, run it once, print one JSON line."""
    parser = argparse.ArgumentParser(description=f"{engine} on PostgreSQL, one workload per run")
    parser.add_argument("workload", choices=sorted(DEFAULT_N))
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--mode", choices=["default", "fast"], default="default")
    args = parser.parse_args()
    head = {"engine": engine, "mode": args.mode, "backend": "postgres", "workload": args.workload}
    if args.workload in skipped:
        emit({**head, "skipped": skipped[args.workload]})
        return
    n = args.n or DEFAULT_N[args.workload]
    run = workloads[args.workload]

    async def in_scratch_database() -> dict[str, Any]:
        async with scratch_database(f"bench_{engine}") as dsn:
            return await asyncio.wait_for(run(dsn, n, args.mode == "fast"), RUN_TIMEOUT_S)

    emit({**head, **asyncio.run(in_scratch_database())})
