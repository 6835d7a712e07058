"""Shared pieces of the benchmarks: where PostgreSQL is, scratch storages, timing,
percentiles, RSS."""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

POSTGRES_DSN = os.environ.get("BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


async def drop_schema(schema: str) -> None:
    """Drop a benchmark's PostgreSQL schema and everything in it."""
    import psycopg
    from psycopg import sql

    async with await psycopg.AsyncConnection.connect(POSTGRES_DSN, autocommit=True) as conn:
        await conn.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        )


@asynccontextmanager
async def scratch_url(backend: str, name: str) -> AsyncIterator[tuple[str, Path]]:
    """``(storage URL, temporary directory)``: a new SQLite file ``name.db`` in that directory,
    or a new PostgreSQL schema, dropped afterwards."""
    with tempfile.TemporaryDirectory() as directory:
        if backend == "sqlite":
            yield f"sqlite:///{directory}/{name}.db", Path(directory)
            return
        schema = unique_name(f"bench_{name}")
        try:
            yield f"{POSTGRES_DSN}?schema={schema}", Path(directory)
        finally:
            await drop_schema(schema)


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, by the nearest-rank method."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))
    return ordered[index]


def latency_summary(ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(ms, 0.50), 3),
        "p95_ms": round(percentile(ms, 0.95), 3),
        "p99_ms": round(percentile(ms, 0.99), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
    }


def micros_summary(micros: list[float], name: str) -> dict[str, float]:
    """``{name}_p50_us`` and ``{name}_p99_us`` of durations in µs."""
    return {
        f"{name}_p50_us": round(percentile(micros, 0.50), 1),
        f"{name}_p99_us": round(percentile(micros, 0.99), 1),
    }


def rss_mb() -> float:
    """Current resident set size of this process, in MiB (from /proc, Linux)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / (1024 * 1024)


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    """``with stopwatch() as elapsed:`` ... ``elapsed[0]`` is the seconds it took."""
    box: list[float] = []
    start = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - start)


def chain_result(steps: int, seconds: float) -> dict[str, Any]:
    """The W4 figures of a chain of ``steps`` that took ``seconds``."""
    return {
        "steps": steps,
        "seconds": round(seconds, 3),
        "ms_per_step": round(seconds * 1000 / steps, 3),
    }


def emit(result: dict[str, Any]) -> None:
    """Print one result as the last line of stdout (the runner reads it)."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
