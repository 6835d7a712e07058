"""The raw database ceiling of a task's lifecycle, with no engine around it.

    python bench/limit.py {sqlite,postgres} [--n 5000] [--ids random|ours] [--through-storage]

Per batch of 100 rows, on one connection: insert the rows; claim them (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) setting status, owner and lease;
finish them (status, output, conditional on the lease token); close them. Four statements per
batch, each in its own transaction, as an engine must do them. Tasks per second is the
ceiling an engine on that database can approach.

``--through-storage``: the same lifecycle through our storage's API instead, still with no
engine: per batch of 100, ``insert_executions``, ``claim_ready_executions`` and
``record_outcomes`` (whose finish also closes a root), one after the other. It tells how much
of the gap between the ceiling and W1 is our statements and how much the engine around them;
it also reports each call's milliseconds per batch.

``--ids``: the ceiling's execution ids, random (``uuid4``, the default, as ``make bench`` runs
it) or ours (time-ordered, :func:`durable_execution.ids.new_execution_id`), whose inserts land
at the end of the primary key's index.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import POSTGRES_DSN, emit, unique_name

BATCH = 100

_TABLE = """
CREATE TABLE {t} (
    id TEXT PRIMARY KEY,
    task_id TEXT NOT NULL,
    input TEXT NOT NULL,
    status TEXT NOT NULL,
    output TEXT,
    owner TEXT,
    lease_token BIGINT NOT NULL DEFAULT 0,
    start_at BIGINT NOT NULL,
    expires_at BIGINT,
    closed BOOLEAN NOT NULL DEFAULT FALSE
)
"""
_INDEX = "CREATE INDEX {t}_ready ON {t} (start_at) WHERE status = 'ready'"


def random_id() -> str:
    return f"te_{uuid.uuid4().hex}"


def sqlite_limit(n: int, new_id: Callable[[], str] = random_id) -> float:
    with tempfile.TemporaryDirectory() as directory:
        conn = sqlite3.connect(os.path.join(directory, "limit.db"), isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(_TABLE.format(t="t"))
        conn.execute(_INDEX.format(t="t"))
        start = time.perf_counter()
        for _ in range(n // BATCH):
            ids = [new_id() for _ in range(BATCH)]
            now = int(time.time() * 1000)
            _txn(conn, _SQLITE_INSERT, [(i, now) for i in ids])
            conn.execute("BEGIN IMMEDIATE")
            rows = conn.execute(
                "UPDATE t SET status = 'running', owner = 'x', lease_token = lease_token + 1, "
                "expires_at = ? WHERE id IN (SELECT id FROM t WHERE status = 'ready' "
                "AND start_at <= ? ORDER BY start_at LIMIT ?) RETURNING id, lease_token",
                (now + 30_000, now, BATCH),
            ).fetchall()
            conn.execute("COMMIT")
            _txn(conn, _SQLITE_FINISH, rows)
            _txn(conn, "UPDATE t SET closed = 1 WHERE id = ?", [(r[0],) for r in rows])
        elapsed = time.perf_counter() - start
        conn.close()
    return n / elapsed


_SQLITE_INSERT = (
    "INSERT INTO t (id, task_id, input, status, start_at) VALUES (?, 'noop', 'null', 'ready', ?)"
)
_SQLITE_FINISH = (
    "UPDATE t SET status = 'completed', output = 'null', owner = NULL "
    "WHERE id = ? AND lease_token = ?"
)


def _txn(conn: sqlite3.Connection, sql: str, params: Any) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(sql, params)
    conn.execute("COMMIT")


def postgres_limit(n: int, new_id: Callable[[], str] = random_id) -> float:
    import psycopg

    table = unique_name("limit")
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        conn.execute(_TABLE.format(t=table))
        conn.execute(_INDEX.format(t=table))
        try:
            start = time.perf_counter()
            for _ in range(n // BATCH):
                ids = [new_id() for _ in range(BATCH)]
                now = int(time.time() * 1000)
                conn.execute(
                    f"INSERT INTO {table} (id, task_id, input, status, start_at) "
                    "SELECT unnest(%s::text[]), 'noop', 'null', 'ready', %s",
                    (ids, now),
                )
                rows = conn.execute(
                    f"WITH picked AS (SELECT id FROM {table} WHERE status = 'ready' "
                    "AND start_at <= %s ORDER BY start_at LIMIT %s FOR UPDATE SKIP LOCKED) "
                    f"UPDATE {table} t SET status = 'running', owner = 'x', "
                    "lease_token = t.lease_token + 1, expires_at = %s FROM picked "
                    "WHERE t.id = picked.id RETURNING t.id, t.lease_token",
                    (now, BATCH, now + 30_000),
                ).fetchall()
                conn.execute(
                    f"UPDATE {table} t SET status = 'completed', output = 'null', owner = NULL "
                    "FROM unnest(%s::text[], %s::bigint[]) AS d(id, token) "
                    "WHERE t.id = d.id AND t.lease_token = d.token",
                    ([r[0] for r in rows], [r[1] for r in rows]),
                )
                conn.execute(
                    f"UPDATE {table} SET closed = TRUE WHERE id = ANY(%s)", ([r[0] for r in rows],)
                )
            elapsed = time.perf_counter() - start
        finally:
            conn.execute(f"DROP TABLE {table}")
    return n / elapsed


async def storage_lifecycle(backend: str, n: int) -> dict[str, Any]:
    """The lifecycle through our storage's API (see the module's docstring)."""
    from engine import open_storage

    from durable_execution.ids import new_execution_id
    from durable_execution.status import DurableTaskExecutionStatus as S
    from durable_execution.storage.records import ExecutionOutcome, NewExecution

    spent = {"insert": 0.0, "claim": 0.0, "finish": 0.0}
    async with open_storage(backend) as storage:
        await storage.initialize()
        start = time.perf_counter()
        for _ in range(n // BATCH):
            now = int(time.time() * 1000)
            new = [NewExecution(new_execution_id(), "noop", "null", now) for _ in range(BATCH)]
            t0 = time.perf_counter()
            await storage.insert_executions(new, now)
            t1 = time.perf_counter()
            records = await storage.claim_ready_executions(
                executor_id="dx_limit", lease_ms_by_task={"noop": 30_000}, now_ms=now, limit=BATCH
            )
            t2 = time.perf_counter()
            outcomes = [
                ExecutionOutcome(r.execution_id, r.lease_token, r.status, S.COMPLETED, "null")
                for r in records
            ]
            applied = await storage.record_outcomes(outcomes, now)
            t3 = time.perf_counter()
            if len(records) != BATCH or not all(applied):
                raise SystemExit(f"the lifecycle lost rows: {len(records)} claimed")
            spent["insert"] += t1 - t0
            spent["claim"] += t2 - t1
            spent["finish"] += t3 - t2
        elapsed = time.perf_counter() - start
    batches = n // BATCH
    return {
        "tasks_per_s": round(n / elapsed),
        **{f"{k}_ms_per_batch": round(v * 1000 / batches, 3) for k, v in spent.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("backend", choices=["sqlite", "postgres"])
    parser.add_argument("--n", type=int, default=5_000)
    parser.add_argument("--ids", choices=["random", "ours"], default="random")
    parser.add_argument("--through-storage", action="store_true")
    args = parser.parse_args()
    if args.through_storage:
        result = asyncio.run(storage_lifecycle(args.backend, args.n))
        engine = "storage"
    else:
        new_id = random_id
        if args.ids == "ours":
            from durable_execution.ids import new_execution_id as new_id
        lifecycle = sqlite_limit if args.backend == "sqlite" else postgres_limit
        result = {"ids": args.ids, "tasks_per_s": round(lifecycle(args.n, new_id))}
        engine = "limit"
    emit(
        {
            "engine": engine,
            "backend": args.backend,
            "workload": "w1_batch",
            "tasks": args.n,
            **result,
        }
    )


if __name__ == "__main__":
    main()
