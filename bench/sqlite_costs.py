"""What our SQLite statements cost SQLite itself: the ceiling's lifecycle (insert → claim →
finish, 100 rows a batch) on our schema, with plain ``sqlite3`` on one thread (no asyncio, no
storage thread, no engine), from bare statements up to ours, one difference at a time.

    python bench/sqlite_costs.py [--n 20000] [--repeat 5]

Each step adds one difference on top of the one before, so the drop between two lines is what
that difference costs. The last line runs our storage's statements; the gap between it and
``bench/limit.py sqlite --through-storage`` is the storage's own plumbing (the thread hop to
the storage's connection, building rows and records). A diagnostic, not part of ``make
bench``: it uses the storage's private SQL, so it follows whatever the storage does today.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import tempfile
import time
from typing import Any

from durable_execution.ids import new_execution_id
from durable_execution.storage.rows import COLUMNS, record_from_row
from durable_execution.storage.sqlite import schema as sqlite_schema
from durable_execution.storage.sqlite import storage as sqlite_storage

BATCH = 100
_OUR_TABLES = sqlite_schema._CREATE  # the storage's schema: 28 columns, 7 partial indexes
_BARE_INSERT = (
    "INSERT INTO de_executions (execution_id, task_id, input, status, created_at, updated_at, "
    "start_at) VALUES (?, 'noop', 'null', 'ready', ?2, ?2, ?2)"
)
_CLAIM = (
    "UPDATE de_executions SET status = 'running', executor_id = 'dx_0123456789abcdef', "
    "lease_token = lease_token + 1, started_at = ?1, expires_at = ?1 + 30000, updated_at = ?1 "
    "WHERE execution_id IN (SELECT execution_id FROM de_executions WHERE status = 'ready' "
    "AND start_at <= ?1 AND task_id IN ('noop') ORDER BY priority DESC, start_at, execution_id "
    "LIMIT ?2) RETURNING "
)
_BARE_FINISH = (
    "UPDATE de_executions SET status = 'completed', output = 'null', finished_at = ?3, "
    "updated_at = ?3, executor_id = NULL, expires_at = NULL, close_state = 'closed' "
    "WHERE execution_id = ?1 AND lease_token = ?2 AND status = 'running'"
)

# (label, our insert, claim returning every column, rows into records, our JSON finish)
STEPS = [
    ("bare statements on our schema", False, False, False, False),
    ("+ our insert (16 parameters, 6 of them None)", True, False, False, False),
    ("+ the claim returns all 28 columns", True, True, False, False),
    ("+ the claimed rows become records", True, True, True, False),
    ("+ our JSON finish: our statements", True, True, True, True),
]


def lifecycle(
    n: int, our_insert: bool, all_columns: bool, records: bool, json_finish: bool
) -> float:
    with tempfile.TemporaryDirectory() as directory:
        conn = sqlite3.connect(os.path.join(directory, "costs.db"), isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        for statement in _OUR_TABLES.split(";"):
            if statement.strip():
                conn.execute(statement)
        start = time.perf_counter()
        for _ in range(n // BATCH):
            now = int(time.time() * 1000)
            ids = [new_execution_id() for _ in range(BATCH)]
            conn.execute("BEGIN IMMEDIATE")
            if our_insert:
                # the storage's values for a root inserted ready (see SQLiteStorage._insert_rows);
                # unclaimed: executor_id, lease_token, started_at, expires_at
                unclaimed: tuple[Any, ...] = (None, 0, None, None)
                rows = [
                    (i, "noop", "null", "ready", None, None, 0, 0, 0, None, now, now, *unclaimed)
                    for i in ids
                ]
                conn.executemany(sqlite_storage._INSERT, rows)
            else:
                conn.executemany(_BARE_INSERT, [(i, now) for i in ids])
            conn.execute("COMMIT")
            conn.execute("BEGIN IMMEDIATE")
            if all_columns:
                claimed = conn.execute(_CLAIM + ", ".join(COLUMNS), (now, BATCH)).fetchall()
                if records:
                    taken = [(r.execution_id, r.lease_token) for r in map(record_from_row, claimed)]
                else:
                    taken = [(r[0], r[-1]) for r in claimed]
            else:
                taken = conn.execute(_CLAIM + "execution_id, lease_token", (now, BATCH)).fetchall()
            conn.execute("COMMIT")
            conn.execute("BEGIN IMMEDIATE")
            if json_finish:
                values = [[i, "running", t, "completed", "null", None, None] for i, t in taken]
                conn.execute(sqlite_storage._FINISH_BATCH, (now, json.dumps(values))).fetchall()
            else:
                conn.executemany(_BARE_FINISH, [(i, t, now) for i, t in taken])
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - start
        conn.close()
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rates: dict[str, list[float]] = {label: [] for label, *_ in STEPS}
    for _ in range(args.repeat):  # alternated, so that the machine's drift hits every step
        for label, *flags in STEPS:
            rates[label].append(lifecycle(args.n, *flags))
    print(f"SQLite {sqlite3.sqlite_version}, {args.n} tasks, medians of {args.repeat}:")
    for label, values in rates.items():
        rate = statistics.median(values)
        print(f"  {label:48s} {rate:8.0f} tasks/s  {1e6 / rate:6.2f} µs a task")


if __name__ == "__main__":
    main()
