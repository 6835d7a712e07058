"""Purge timings on a big table: how long each batch takes (the time its locks are held) and
how fast a whole purge goes.

    python bench/purge.py BACKEND [--rows 1000000] [--children 3] [--running-every 10]
                          [--batch-trees 500] [--scan-rows 5000]

BACKEND: sqlite or postgres. The table is filled fast (PostgreSQL: COPY; SQLite: one
executemany) with realistic rows: trees of a root and ``--children`` children, all completed
and closed, their ids time-ordered as ``ids.py`` makes them (created over the last 30 days);
one tree in ``--running-every`` still runs (its root waits for its children, which are ready)
and must stay. Then the purge of everything finished before now runs batch after batch, as
``purge_executions`` does, and the result is one JSON line: rows, fill time, per-batch
milliseconds (p50, p99, max), total seconds, trees per second, rows left (the running trees').
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import POSTGRES_DSN, drop_schema, emit, percentile, unique_name

from durable_execution.storage.abilities import ExecutionPurge
from durable_execution.storage.rows import COLUMNS

DAY_MS = 86_400_000


def _rows(total: int, children: int, running_every: int, now_ms: int) -> Iterator[tuple[Any, ...]]:
    """Rows in COLUMNS order (child_execution_ids excluded: not a column)."""
    trees = total // (children + 1)
    start = now_ms - 30 * DAY_MS
    step = max(1, (30 * DAY_MS - 60_000) // max(1, trees))
    for n in range(trees):
        created = start + n * step
        root = f"te_{created:012x}{os.urandom(10).hex()}"
        running = running_every > 0 and n % running_every == 0
        finished = None if running else created + 50
        yield _row(
            root,
            None,
            0,
            "waiting_for_children" if running else "completed",
            created,
            finished,
            children,
            children if running else 0,
            "open" if running else "closed",
            key=f"order-{n}",
        )
        for index in range(children):
            child = f"te_{created:012x}{os.urandom(10).hex()}"
            yield _row(
                child,
                root,
                index,
                "ready" if running else "completed",
                created,
                None if running else created + 40,
                0,
                0,
                "open" if running else "closed",
            )


def _row(
    execution_id: str,
    parent: str | None,
    index: int,
    status: str,
    created: int,
    finished: int | None,
    children: int,
    unfinished: int,
    close_state: str,
    key: str | None = None,
) -> tuple[Any, ...]:
    values = {
        "execution_id": execution_id,
        "task_id": "charge_card" if parent is None else "send_email",
        "input": '{"order_id": 123456, "amount_cents": 4200, "currency": "EUR"}',
        "status": status,
        "root_execution_id": parent,
        "parent_execution_id": parent,
        "index_in_parent": index,
        "is_finalize": False,
        "priority": 0,
        "idempotency_key": key,
        "output": None if finished is None else '{"ok": true, "ref": "ch_3NqZk2"}',
        "run_output": None,
        "error": None,
        "retry_attempts": 0,
        "created_at": created,
        "updated_at": finished or created,
        "start_at": created,
        "started_at": None if status == "ready" else created + 1,
        "expires_at": None,
        "finished_at": finished,
        "children_count": children,
        "unfinished_children": unfinished,
        "failed_children": 0,
        "finalize_execution_id": None,
        "close_state": close_state,
        "needs_promise_cancellation": False,
        "executor_id": None,
        "lease_token": 1,
        "attributes": '{"tenant": "acme"}',
        "timeout_at": created + 30_000,
        "lease_expiries": 0,
        "children_policy": "fail_fast",
        "unique_id": None,
    }
    return tuple(values[column] for column in COLUMNS)


async def _fill_postgres(schema: str, rows: Iterator[tuple[Any, ...]]) -> None:
    import psycopg
    from psycopg import sql

    table = sql.Identifier(schema, "de_executions")
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS)
    async with await psycopg.AsyncConnection.connect(POSTGRES_DSN, autocommit=True) as conn:
        async with conn.cursor() as cur:
            copy = sql.SQL("COPY {} ({}) FROM STDIN").format(table, columns)
            async with cur.copy(copy) as copier:
                for row in rows:
                    await copier.write_row(row)
        await conn.execute(sql.SQL("VACUUM ANALYZE {}").format(table))


def _fill_sqlite(path: str, rows: Iterator[tuple[Any, ...]]) -> None:
    with sqlite3.connect(path) as conn:
        marks = ", ".join("?" * len(COLUMNS))
        conn.executemany(
            f"INSERT INTO de_executions ({', '.join(COLUMNS)}) VALUES ({marks})",
            ((*r[:7], int(r[7]), *r[8:25], int(r[25]), *r[26:]) for r in rows),
        )
        conn.execute("ANALYZE")


async def _purge(storage: ExecutionPurge, batch_trees: int, scan_rows: int) -> dict[str, Any]:
    before = int(time.time() * 1000)
    after, trees, executions, batch_ms = "", 0, 0, []
    started = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        batch = await storage.purge_closed_trees(
            finished_before_ms=before,
            after_execution_id=after,
            scan_limit=scan_rows,
            max_trees=batch_trees,
        )
        batch_ms.append((time.perf_counter() - t0) * 1000)
        trees += batch.trees
        executions += batch.executions
        if batch.next_after is None:
            break
        after = batch.next_after
    total_s = time.perf_counter() - started
    return {
        "purged_trees": trees,
        "purged_executions": executions,
        "batches": len(batch_ms),
        "batch_p50_ms": round(percentile(batch_ms, 0.5), 1),
        "batch_p99_ms": round(percentile(batch_ms, 0.99), 1),
        "batch_max_ms": round(max(batch_ms), 1),
        "purge_total_s": round(total_s, 2),
        "trees_per_s": round(trees / total_s),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backend", choices=["sqlite", "postgres"])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--children", type=int, default=3)
    parser.add_argument("--running-every", type=int, default=10)
    parser.add_argument("--batch-trees", type=int, default=500)
    parser.add_argument("--scan-rows", type=int, default=5_000)
    args = parser.parse_args()
    now = int(time.time() * 1000)
    rows = _rows(args.rows, args.children, args.running_every, now)
    result: dict[str, Any] = {"backend": args.backend, "rows": args.rows}
    if args.backend == "postgres":
        from durable_execution.storage.postgres import PostgresStorage

        schema = unique_name("bench_purge")
        storage: Any = PostgresStorage(POSTGRES_DSN, schema=schema)
        try:
            await storage.initialize()
            t0 = time.perf_counter()
            await _fill_postgres(schema, rows)
            result["fill_s"] = round(time.perf_counter() - t0, 1)
            result.update(await _purge(storage, args.batch_trees, args.scan_rows))
            result["rows_left"] = await _count_postgres(schema)
        finally:
            await storage.close()
            await drop_schema(schema)
    else:
        from durable_execution.storage.sqlite import SQLiteStorage

        with tempfile.TemporaryDirectory() as directory:
            path = f"{directory}/purge.db"
            storage = SQLiteStorage(path)
            try:
                await storage.initialize()
                t0 = time.perf_counter()
                await asyncio.to_thread(_fill_sqlite, path, rows)
                result["fill_s"] = round(time.perf_counter() - t0, 1)
                result.update(await _purge(storage, args.batch_trees, args.scan_rows))
            finally:
                await storage.close()
            with sqlite3.connect(path) as conn:
                result["rows_left"] = conn.execute("SELECT count(*) FROM de_executions").fetchone()[
                    0
                ]
    emit(result)


async def _count_postgres(schema: str) -> int:
    import psycopg
    from psycopg import sql

    async with await psycopg.AsyncConnection.connect(POSTGRES_DSN, autocommit=True) as conn:
        cur = await conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, "de_executions"))
        )
        row = await cur.fetchone()
        return int(row[0]) if row else -1


if __name__ == "__main__":
    asyncio.run(main())
