"""The plans and times of the listing queries (``list_executions``) on a large PostgreSQL
table, for docs/postgres.md.

Fills a throwaway schema's executions table with N rows (default 1,000,000) in one
``generate_series`` INSERT, never analyzed and with autovacuum off (no statistics, as on a
young installation), then for each listing prints the plan the storage's own connections
use (its session settings, generic plans), ``EXPLAIN (ANALYZE)``'s actual time, and the time
of ``PostgresStorage.list_executions`` (median of R calls). The schema is dropped afterwards.

Usage: python bench/listing_plans.py [--rows N] [--repeat R]
(PostgreSQL from BENCH_POSTGRES_DSN, default the local ``test`` database.)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import psycopg
from psycopg import sql

from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.inspection import ExecutionFilter
from durable_execution.storage.postgres import PostgresStorage
from durable_execution.storage.postgres.connections import SESSION_SETTINGS
from durable_execution.storage.postgres.inspection import list_sql
from durable_execution.storage.postgres.schema import Names, ensure_schema

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import POSTGRES_DSN, drop_schema

# Per 100 rows: 80 completed, 10 ready, 5 running, 2 waiting for children, 1 failed (a root),
# 1 timed out; three rows in four are children of the fourth; 10 tasks; one row in ten has
# attributes {"tenant": "t<0..99>"}; created_at = i, finished_at = i + 5 when finished.
_FILL = """
INSERT INTO {table} (execution_id, task_id, input, status, parent_execution_id,
    index_in_parent, created_at, updated_at, start_at, finished_at, close_state, attributes)
SELECT 'e' || lpad(i::text, 8, '0'), 'task-' || (i % 10), '{{}}',
    CASE WHEN b < 80 THEN 'completed' WHEN b < 90 THEN 'ready' WHEN b < 95 THEN 'running'
         WHEN b = 96 THEN 'failed' WHEN b < 99 THEN 'waiting_for_children'
         ELSE 'timed_out' END,
    CASE WHEN i % 4 = 0 THEN NULL ELSE 'e' || lpad((i / 4 * 4)::text, 8, '0') END,
    i % 4, i, i, i,
    CASE WHEN b < 80 OR b = 96 OR b = 99 THEN i + 5 END,
    CASE WHEN b < 80 OR b = 96 OR b = 99 THEN 'closed' ELSE 'open' END,
    CASE WHEN i % 10 = 3 THEN '{{"tenant": "t' || (i / 10 % 100) || '"}}' END
FROM generate_series(0, {last}) AS i, LATERAL (SELECT i % 100 AS b) AS bucket
"""

LISTINGS = {
    "newest first, no filter": ExecutionFilter(),
    "status = failed": ExecutionFilter(statuses=(S.FAILED,)),
    "status in (failed, timed_out)": ExecutionFilter(statuses=(S.FAILED, S.TIMED_OUT)),
    "task_id = task-3": ExecutionFilter(task_ids=("task-3",)),
    "root_only": ExecutionFilter(root_only=True),
    'attributes {"tenant": "t42"}': ExecutionFilter(attributes={"tenant": "t42"}),
    "failed roots of task-6, next page": ExecutionFilter(
        statuses=(S.FAILED,), task_ids=("task-6",), root_only=True
    ),
}


async def explain(
    conn: psycopg.AsyncConnection[Any], query: str, params: dict[str, Any], *, bitmaps: bool
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
    if bitmaps:
        await conn.execute("SET enable_bitmapscan = on; SET plan_cache_mode = force_custom_plan")
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
            await conn.execute(sql.SQL(_FILL).format(table=names.table, last=sql.Literal(rows - 1)))
            print(f"filled {rows:,} rows in {time.perf_counter() - started:.1f} s (no ANALYZE)\n")
            storage = PostgresStorage(POSTGRES_DSN, schema=schema, listen=False)
            for title, where in LISTINGS.items():
                after = (rows // 2, f"e{rows // 2:08d}") if "next page" in title else None
                query, params = list_sql(names, where, limit=50, after=after)
                plan, ms = await explain(conn, query, params, bitmaps=bool(where.attributes))
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
            await storage.close()
    finally:
        await drop_schema(schema)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    options = parser.parse_args()
    asyncio.run(main(options.rows, options.repeat))
