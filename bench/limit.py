"""The raw database ceiling of a task's lifecycle, with no engine around it.

    python bench/limit.py {sqlite,postgres} [--n 5000]

Per batch of 100 rows, on one connection: insert the rows; claim them (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) setting status, owner and lease;
finish them (status, output, conditional on the lease token); close them. Four statements per
batch, each in its own transaction, as an engine must do them. Tasks per second is the
ceiling an engine on that database can approach.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
import uuid
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


def _ids(n: int) -> list[str]:
    return [f"te_{uuid.uuid4().hex}" for _ in range(n)]


def sqlite_limit(n: int) -> float:
    with tempfile.TemporaryDirectory() as directory:
        conn = sqlite3.connect(os.path.join(directory, "limit.db"), isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(_TABLE.format(t="t"))
        conn.execute(_INDEX.format(t="t"))
        start = time.perf_counter()
        for _ in range(n // BATCH):
            ids = _ids(BATCH)
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


def postgres_limit(n: int) -> float:
    import psycopg

    table = unique_name("limit")
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        conn.execute(_TABLE.format(t=table))
        conn.execute(_INDEX.format(t=table))
        try:
            start = time.perf_counter()
            for _ in range(n // BATCH):
                ids = _ids(BATCH)
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("backend", choices=["sqlite", "postgres"])
    parser.add_argument("--n", type=int, default=5_000)
    args = parser.parse_args()
    rate = sqlite_limit(args.n) if args.backend == "sqlite" else postgres_limit(args.n)
    emit(
        {
            "engine": "limit",
            "backend": args.backend,
            "workload": "w1_batch",
            "tasks": args.n,
            "tasks_per_s": round(rate),
        }
    )


if __name__ == "__main__":
    main()
