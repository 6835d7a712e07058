"""The plans and times of the listing queries (``list_executions``) on a large PostgreSQL
table, for docs/postgres.md.

Fills a throwaway schema's executions table with N rows (default 1,000,000) in one
``generate_series`` INSERT, never analyzed and with autovacuum off (no statistics, as on a
young installation), then for each listing prints the plan the storage's own connections
use (its session settings, generic plans), ``EXPLAIN (ANALYZE)``'s actual time, and the time
of ``PostgresStorage.list_executions`` (median of R calls); then the time of a count by task
and status (``durable-execution stats``). The schema is dropped afterwards.

The rows are as the executor makes them: ids of the form ``te_`` + 12 hex digits of the
creation time in milliseconds + random digits, one row every 100 ms (1,000,000 rows: about
28 hours), so that the creation filters narrow the id range as they do on a real table.

Usage: python bench/listing_plans.py [--rows N] [--repeat R]
(PostgreSQL from BENCH_POSTGRES_DSN, default the local ``test`` database.)
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import psycopg
from psycopg import sql

from durable_execution.executor.query_args import execution_filter
from durable_execution.storage.inspection import ExecutionFilter
from durable_execution.storage.postgres import PostgresStorage
from durable_execution.storage.postgres.connections import SESSION_SETTINGS
from durable_execution.storage.postgres.inspection import list_sql
from durable_execution.storage.postgres.schema import Names, ensure_schema

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import POSTGRES_DSN, drop_schema

T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC, in ms
STEP_MS = 100

# Per 100 rows: 80 completed, 10 ready, 5 running, 2 waiting for children, 1 failed (a root),
# 1 timed out, 1 cancelled; three rows in four are children of the fourth; 10 tasks; one row
# in ten has attributes {"tenant": "t<0..99>"}; created_at = T0 + 100 ms * i, finished_at 5 s
# later when finished.
_FILL = """
INSERT INTO {table} (execution_id, task_id, input, status, parent_execution_id,
    index_in_parent, created_at, updated_at, start_at, finished_at, close_state, attributes)
SELECT id(i), 'task-' || (i % 10), '{{}}',
    CASE WHEN b < 80 THEN 'completed' WHEN b < 90 THEN 'ready' WHEN b < 95 THEN 'running'
         WHEN b = 96 THEN 'failed' WHEN b < 98 THEN 'waiting_for_children'
         WHEN b = 98 THEN 'cancelled' ELSE 'timed_out' END,
    CASE WHEN i % 4 = 0 THEN NULL ELSE id(i / 4 * 4) END,
    i % 4, {t0} + i * {step}, {t0} + i * {step}, {t0} + i * {step},
    CASE WHEN b < 80 OR b >= 98 OR b = 96 THEN {t0} + i * {step} + 5000 END,
    CASE WHEN b < 80 OR b >= 98 OR b = 96 THEN 'closed' ELSE 'open' END,
    CASE WHEN i % 10 = 3 THEN '{{"tenant": "t' || (i / 10 % 100) || '"}}' END
FROM generate_series(0, {last}) AS i, LATERAL (SELECT i % 100 AS b) AS bucket
"""
_ID_FUNCTION = """
CREATE FUNCTION pg_temp.id(i bigint) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT 'te_' || lpad(to_hex({t0} + i * {step}), 12, '0') || substr(md5(i::text), 1, 20)
$$
"""


def _at(i: int) -> dt.datetime:
    """The creation time of row ``i``."""
    return dt.datetime.fromtimestamp((T0 + i * STEP_MS) / 1000, dt.UTC)


def listings(rows: int) -> dict[str, ExecutionFilter]:
    """Every filter of a listing, alone, and a few together; times relative to the rows."""
    hour = 36_000  # rows per hour
    return {
        "newest first, no filter": execution_filter(),
        "status = failed": execution_filter(status="failed"),
        "status in (failed, timed_out, cancelled)": execution_filter(
            status=["failed", "timed_out", "cancelled"]
        ),
        "status = ready": execution_filter(status="ready"),
        "status = running": execution_filter(status="running"),
        "status = completed": execution_filter(status="completed"),
        "status = waiting_for_children": execution_filter(status="waiting_for_children"),
        "task_id = task-3": execution_filter(task_id="task-3"),
        "task_id in (task-3, task-4)": execution_filter(task_id=["task-3", "task-4"]),
        "root_only": execution_filter(root_only=True),
        "parent_execution_id (one parent's children)": execution_filter(
            parent_execution_id=_fill_id(rows // 2 // 4 * 4)
        ),
        "created in one hour, a day before the newest": execution_filter(
            created_after=_at(rows - 25 * hour), created_before=_at(rows - 24 * hour)
        ),
        "created in the last hour": execution_filter(created_after=_at(rows - hour)),
        "finished before a day before the newest": execution_filter(
            finished_before=_at(rows - 24 * hour)
        ),
        "finished in the last hour": execution_filter(finished_after=_at(rows - hour)),
        'attributes {"tenant": "t42"} (1 row in 1,000)': execution_filter(
            attributes={"tenant": "t42"}
        ),
        "failed of task-6": execution_filter(status="failed", task_id="task-6"),
        "failed roots of task-6, next page": execution_filter(
            status="failed", task_id="task-6", root_only=True
        ),
        "task_id = nope (matches nothing: the whole key)": execution_filter(task_id="nope"),
    }


def _fill_id(i: int) -> str:
    digest = hashlib.md5(str(i).encode()).hexdigest()[:20]
    return f"te_{T0 + i * STEP_MS:012x}{digest}"


async def explain(
    conn: psycopg.AsyncConnection[Any], query: str, params: dict[str, Any]
) -> tuple[str, float]:
    """The generic plan under the storage's settings, and EXPLAIN ANALYZE's execution time."""
    names: list[str] = []
    import re

    for name in re.findall(r"%\((\w+)\)s", query):
        if name not in names:
            names.append(name)
    prepared = re.sub(r"%\((\w+)\)s", lambda m: f"${names.index(m.group(1)) + 1}", query)
    statement = f"p_{uuid.uuid4().hex[:8]}"
    await conn.execute(SESSION_SETTINGS)
    await conn.execute("SET jit = off")
    await conn.execute(f"PREPARE {statement} AS {prepared}")
    cur = psycopg.AsyncClientCursor(conn)
    args = ", ".join(["%s"] * len(names))
    execute = f"EXECUTE {statement}({args})"
    values = [params[n] for n in names]
    plan = [
        r[0] for r in await (await cur.execute("EXPLAIN (COSTS OFF) " + execute, values)).fetchall()
    ]
    analyzed = [
        r[0] for r in await (await cur.execute("EXPLAIN (ANALYZE) " + execute, values)).fetchall()
    ]
    await conn.execute(f"DEALLOCATE {statement}")
    await conn.execute("RESET ALL")
    ms = next(
        float(line.split(":")[1].split()[0])
        for line in analyzed
        if line.startswith("Execution Time")
    )
    return "\n".join(plan), ms


async def main(rows: int, repeat: int) -> None:
    schema = f"de_bench_list_{uuid.uuid4().hex[:8]}"
    names = Names(schema, "de_")
    try:
        async with await psycopg.AsyncConnection.connect(POSTGRES_DSN, autocommit=True) as conn:
            await ensure_schema(conn, names)
            await conn.execute(
                sql.SQL("ALTER TABLE {} SET (autovacuum_enabled = false)").format(names.table)
            )
            started = time.perf_counter()
            steps = {"t0": sql.Literal(T0), "step": sql.Literal(STEP_MS)}
            await conn.execute(sql.SQL(_ID_FUNCTION).format(**steps))
            await conn.execute(
                sql.SQL(_FILL.replace("id(", "pg_temp.id(")).format(
                    table=names.table, last=sql.Literal(rows - 1), **steps
                )
            )
            print(f"filled {rows:,} rows in {time.perf_counter() - started:.1f} s (no ANALYZE)\n")
            storage = PostgresStorage(POSTGRES_DSN, schema=schema, listen=False)
            for title, where in listings(rows).items():
                after = _fill_id(rows // 2) if "next page" in title else None
                query, params = list_sql(names, where, limit=50, after=after)
                plan, ms = await explain(conn, query, params)
                # The custom plan with PostgreSQL's default settings (sequential scans
                # allowed), as on a pool the application configures itself.
                cur = psycopg.AsyncClientCursor(conn)
                await cur.execute("EXPLAIN (COSTS OFF) " + query, params)
                default_plan = "\n".join(row[0] for row in await cur.fetchall())
                scans = "a Seq Scan" if "Seq Scan" in default_plan else "no Seq Scan"
                times = []
                for _ in range(repeat):
                    t = time.perf_counter()
                    found = await storage.list_executions(where, limit=50, after=after)
                    times.append((time.perf_counter() - t) * 1000)
                print(f"#### {title}\n")
                print(
                    f"EXPLAIN ANALYZE execution {ms:.2f} ms; list_executions median "
                    f"{statistics.median(times):.2f} ms ({len(found)} rows); default "
                    f"settings' custom plan: {scans}\n"
                )
                print("```text\n" + plan + "\n```\n")
            times = []
            for _ in range(3):
                t = time.perf_counter()
                counts = await storage.count_executions(ExecutionFilter(), by=("task_id", "status"))
                times.append((time.perf_counter() - t) * 1000)
            print(
                f"#### count by task and status (stats)\n\ncount_executions median "
                f"{statistics.median(times):.0f} ms ({len(counts)} groups)\n"
            )
            await storage.close()
    finally:
        await drop_schema(schema)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    asyncio.run(main(options.rows, options.repeat))
