"""Scale: W1, W2 and reads with millions of finished executions already in the table (issue 18).

    python bench/scale.py BACKEND [--sizes 1000000,10000000] [--rounds 3]
                          [--autovacuum server|on|server,on] [--keep-dead]

BACKEND: sqlite or postgres. One table is filled with finished executions, grown through
``--sizes`` in turn; at each size, ``--rounds`` rounds each measure a fresh, empty store and
then the filled one (alternated, so that a machine that slows down midway weighs on both), and
the result gives the medians and their ratios (filled / empty), plus the table and index sizes.

The rows are those a service leaves: trees of a root and four children (task ids ``order`` and
``step``), inputs of ~100 bytes of JSON, outputs of ~150, 95% completed, 4% failed (with an
error of ~300 bytes), 1% cancelled, all closed. PostgreSQL: filled on the server itself
(``INSERT ... SELECT generate_series``, no round trip per row), each row inserted ``ready`` and
then updated to its final status, as the queue does (one dead version per row and an entry in
the ready index each: the bloat a queue's history leaves where nothing vacuums it). SQLite:
``executemany`` of the finished rows in transactions of 200,000.

PostgreSQL ``--autovacuum``: ``server`` keeps the server's setting (off on the machine the
figures come from); ``on`` turns it on for the run (``ALTER SYSTEM``, restored at the end).
Unless ``--keep-dead``, the filled table is vacuumed once before the clock starts, as
autovacuum, or the engine's own maintenance where it is off, would have kept it along the way
(their first pass over a table never vacuumed is an upgrade's one-off cost); ``--keep-dead``
measures the table as it is where nothing ever vacuumed it (the release before issue 18).
After the rounds, one pass of the engine's maintenance is timed (``maintenance_pass_s``: the
dead rows of the rounds' workloads to clean; ``None`` where autovacuum is on and it does
nothing).

Figures: W1 (5,000 no-op tasks, batch enqueue, one batch wait), tasks/s; W2 (enqueue and wait
one task, 200 times), p50 ms; ``get_executions`` of one id from the storage, p50 µs, of the
executions W1 just ran (``get_recent``) and of random ones from the filled history
(``get_history``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import POSTGRES_DSN, drop_schema, emit, unique_name
from engine import enqueue_batch, w1, w2

from durable_execution.storage.protocol import DurableStorage

TREE = 5  # a root and four children
W1_TASKS = 5_000
W2_ROUND_TRIPS = 200
READS = 500
SQLITE_CHUNK = 200_000
POSTGRES_CHUNK = 500_000
INPUT = '{"order_id": "o-%s", "customer": "c-%s", "items": [1, 2, 3], "currency": "EUR"}'
OUTPUT = '{"receipt": "r-%s", "total_cents": 12345, "lines": ["a", "b", "c"], "note": "%s"}'
ERROR = (
    '{"error_type": "generic", "message": "payment declined for order o-%s", '
    '"is_retryable": false, "traceback": "%s"}'
)


# -- filling -----------------------------------------------------------------------------------


def _id(ms: int, i: int) -> str:
    return f"te_{ms:012x}{i:020x}"


def sqlite_rows(first: int, count: int, base_ms: int) -> Iterator[tuple[Any, ...]]:
    """Finished rows ``first`` .. ``first + count - 1`` (see the module's docstring)."""
    pad = "x" * 60
    for i in range(first, first + count):
        ms = base_ms + i
        root_i = i - i % TREE
        root = _id(base_ms + root_i, root_i)
        is_root = i == root_i
        roll = i * 2654435761 % 100
        status = "completed" if roll < 95 else "failed" if roll < 99 else "cancelled"
        yield (
            _id(ms, i),
            "order" if is_root else "step",
            INPUT % (i, i % 977),
            status,
            root,
            None if is_root else root,
            0 if is_root else i % TREE - 1,
            OUTPUT % (i, pad) if status == "completed" else None,
            ERROR % (i, pad * 3) if status == "failed" else None,
            ms,
            ms + 40,
            ms,
            ms + 5,
            ms + 40,
            TREE - 1 if is_root else 0,
        )


SQLITE_INSERT = (
    "INSERT INTO de_executions (execution_id, task_id, input, status, root_execution_id, "
    "parent_execution_id, index_in_parent, output, error, created_at, updated_at, start_at, "
    "started_at, finished_at, children_count, close_state, lease_token) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'closed', 1)"
)


def fill_sqlite(path: str, first: int, count: int, base_ms: int) -> None:
    import sqlite3

    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for start in range(first, first + count, SQLITE_CHUNK):
            n = min(SQLITE_CHUNK, first + count - start)
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(SQLITE_INSERT, sqlite_rows(start, n, base_ms))
            conn.execute("COMMIT")
    finally:
        conn.close()


# The same rows, made by the server: ``$1`` is the first row number, ``$2`` the last, ``$3``
# the base time in ms. First inserted ``ready``...
PG_INSERT = """
INSERT INTO {table} (execution_id, task_id, input, status, root_execution_id,
    parent_execution_id, index_in_parent, created_at, updated_at, start_at, children_count)
SELECT 'te_' || lpad(to_hex(%(base)s + i), 12, '0') || lpad(to_hex(i), 20, '0'),
    CASE WHEN i %% 5 = 0 THEN 'order' ELSE 'step' END,
    format('{{"order_id": "o-%%s", "customer": "c-%%s", "items": [1, 2, 3], '
           '"currency": "EUR"}}', i, i %% 977),
    'ready',
    'te_' || lpad(to_hex(%(base)s + i - i %% 5), 12, '0') || lpad(to_hex(i - i %% 5), 20, '0'),
    CASE WHEN i %% 5 = 0 THEN NULL
        ELSE 'te_' || lpad(to_hex(%(base)s + i - i %% 5), 12, '0')
            || lpad(to_hex(i - i %% 5), 20, '0') END,
    CASE WHEN i %% 5 = 0 THEN 0 ELSE i %% 5 - 1 END,
    %(base)s + i, %(base)s + i, %(base)s + i,
    CASE WHEN i %% 5 = 0 THEN 4 ELSE 0 END
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS i
"""
# ... then updated to their final status (``roll`` as in ``sqlite_rows``).
PG_FINISH = """
UPDATE {table} SET
    status = CASE WHEN r < 95 THEN 'completed' WHEN r < 99 THEN 'failed' ELSE 'cancelled' END,
    output = CASE WHEN r < 95 THEN format('{{"receipt": "r-%%s", "total_cents": 12345, '
        '"lines": ["a", "b", "c"], "note": "%%s"}}', n, repeat('x', 60)) END,
    error = CASE WHEN r >= 95 AND r < 99 THEN format('{{"error_type": "generic", '
        '"message": "payment declined for order o-%%s", "is_retryable": false, '
        '"traceback": "%%s"}}', n, repeat('x', 180)) END,
    started_at = created_at + 5, finished_at = created_at + 40, updated_at = created_at + 40,
    close_state = 'closed', lease_token = 1
FROM (SELECT execution_id AS id, (created_at - %(base)s) AS n,
        (created_at - %(base)s) * 2654435761 %% 100 AS r
      FROM {table}
      WHERE execution_id BETWEEN %(low)s AND %(high)s AND status = 'ready') AS f
WHERE execution_id = f.id
"""


async def fill_postgres(schema: str, first: int, count: int, base_ms: int) -> None:
    import psycopg
    from psycopg import sql

    table = sql.Identifier(schema, "de_executions")
    async with await psycopg.AsyncConnection.connect(POSTGRES_DSN, autocommit=True) as conn:
        for start in range(first, first + count, POSTGRES_CHUNK):
            last = min(start + POSTGRES_CHUNK, first + count) - 1
            params = {"base": base_ms, "first": start, "last": last}
            await conn.execute(sql.SQL(PG_INSERT).format(table=table), params)
            bounds = {
                "base": base_ms,
                "low": _id(base_ms + start, start),
                "high": _id(base_ms + last, last),
            }
            await conn.execute(sql.SQL(PG_FINISH).format(table=table), bounds)


def file_bytes(path: str) -> int:
    """The size of a SQLite database: its file and its write-ahead log."""
    return sum(os.path.getsize(path + s) for s in ("", "-wal") if os.path.exists(path + s))


def remove_database(path: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(path + suffix).unlink(missing_ok=True)


# -- the stores --------------------------------------------------------------------------------


class Store:
    """One store of the run: a SQLite file or a PostgreSQL schema, opened anew for each
    measurement (as a process starting would)."""

    def __init__(self, backend: str, directory: str, name: str) -> None:
        self.backend = backend
        self.path = os.path.join(directory, f"{name}.db")
        self.schema = unique_name(f"bench_scale_{name}")
        self.rows = 0

    def open(self) -> DurableStorage:
        if self.backend == "sqlite":
            from durable_execution.storage.sqlite import SQLiteStorage

            return SQLiteStorage(self.path)
        from durable_execution.storage.postgres import PostgresStorage

        return PostgresStorage(POSTGRES_DSN, schema=self.schema)

    async def create(self) -> None:
        storage = self.open()
        await storage.initialize()
        await storage.close()

    async def drop(self) -> None:
        if self.backend == "sqlite":
            await asyncio.to_thread(remove_database, self.path)
        else:
            await drop_schema(self.schema)

    async def grow(self, to: int, base_ms: int) -> float:
        """Fill up to ``to`` rows; the seconds it took."""
        started = time.monotonic()
        if self.backend == "sqlite":
            await asyncio.to_thread(fill_sqlite, self.path, self.rows, to - self.rows, base_ms)
        else:
            await fill_postgres(self.schema, self.rows, to - self.rows, base_ms)
        self.rows = to
        return time.monotonic() - started

    async def sql(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        import psycopg

        async with await psycopg.AsyncConnection.connect(POSTGRES_DSN, autocommit=True) as conn:
            cur = await conn.execute(statement, params or None)
            return await cur.fetchall() if cur.description else []

    async def sizes(self) -> dict[str, Any]:
        """The table's and each index's size in MB (SQLite: the file's), and the dead rows."""
        if self.backend == "sqlite":
            return {"file_mb": round(file_bytes(self.path) / 2**20, 1)}
        rows = await self.sql(
            "SELECT c.relname, pg_relation_size(c.oid) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname LIKE 'de_executions%%' ORDER BY 1",
            self.schema,
        )
        stats = await self.sql(
            "SELECT n_live_tup, n_dead_tup, vacuum_count + autovacuum_count "
            "FROM pg_stat_user_tables WHERE schemaname = %s AND relname = 'de_executions'",
            self.schema,
        )
        live, dead, vacuums = stats[0] if stats else (None, None, None)
        return {
            "mb": {name: round(size / 2**20, 1) for name, size in rows},
            "live_tuples": live,
            "dead_tuples": dead,
            "vacuums": vacuums,
        }

    async def blocks(self) -> dict[str, int] | None:
        """PostgreSQL: the executions table's heap and index blocks read so far (found in
        shared buffers or not), once the counters settled (a backend reports them at the end of
        a transaction at most once a second, and when it exits)."""
        if self.backend != "postgres":
            return None
        query = (
            "SELECT coalesce(heap_blks_hit + heap_blks_read, 0), "
            "coalesce(idx_blks_hit + idx_blks_read, 0), coalesce(heap_blks_read, 0) "
            "FROM pg_statio_all_tables WHERE relid = to_regclass(%s)"
        )
        table = f'"{self.schema}"."de_executions"'
        last = None
        for _ in range(50):
            rows = await self.sql("SELECT pg_stat_clear_snapshot()")
            rows = await self.sql(query, table)
            if not rows:
                return None
            if rows[0] == last:
                break
            last = rows[0]
            await asyncio.sleep(0.3)
        heap, index, misses = rows[0]
        blocks = {"heap": int(heap), "index": int(index), "heap_misses": int(misses)}
        per_index = await self.sql(
            "SELECT indexrelname, idx_blks_hit + idx_blks_read FROM pg_statio_all_indexes "
            "WHERE relid = to_regclass(%s)",
            table,
        )
        blocks.update({f"index:{name.removeprefix('de_executions_')}": n for name, n in per_index})
        return blocks

    async def history_ids(self, base_ms: int) -> list[str]:
        picks = random.Random(18).sample(range(self.rows), min(READS, self.rows))
        return [_id(base_ms + i, i) for i in picks]


# -- measuring ---------------------------------------------------------------------------------


async def read_p50_us(storage: DurableStorage, ids: list[str]) -> float | None:
    if not ids:
        return None
    micros = []
    for execution_id in ids:
        start = time.perf_counter()
        records = await storage.get_executions([execution_id])
        micros.append((time.perf_counter() - start) * 1e6)
        assert len(records) == 1, execution_id
    return round(statistics.median(micros), 1)


async def recent_ids(storage: DurableStorage, count: int) -> list[str]:
    """Ids of executions the workloads just ran (W2's, read back from the storage)."""
    from durable_execution import DurableExecutor

    executor = DurableExecutor(storage)
    task = executor.task(id="noop", timeout_ms=30_000, run=_noop)
    async with executor:
        handles = await executor.enqueue_tasks([(task, None)] * count)
        await executor.wait_until_finished(handles)
    return [h.execution_id for h in handles]


async def _noop(ctx: Any, input: Any) -> None:
    return None


async def measure(store: Store, base_ms: int) -> dict[str, Any]:
    before = await store.blocks()
    storage = store.open()
    try:
        first = await w1(storage, W1_TASKS, enqueue_batch)
    finally:
        await storage.close()
    after = await store.blocks()
    storage = store.open()
    try:
        second = await w2(storage, W2_ROUND_TRIPS)
        recent = await recent_ids(storage, READS)
        figures = {
            "w1_tasks_per_s": first["tasks_per_s"],
            "w2_p50_ms": second["p50_ms"],
            "get_recent_p50_us": await read_p50_us(storage, recent),
            "get_history_p50_us": await read_p50_us(storage, await store.history_ids(base_ms)),
        }
    finally:
        await storage.close()
    if before is not None and after is not None:
        figures["w1_blocks_per_task"] = {
            kind: round((after[kind] - before.get(kind, 0)) / W1_TASKS, 2)
            for kind in after
            if after[kind] != before.get(kind, 0)
        }
    return figures


async def timed_pass(store: Store) -> float | None:
    """Seconds of one pass of the engine's maintenance on ``store`` after the rounds (the
    dead rows of their workloads to clean); ``None`` where there is none or it did nothing."""
    storage = store.open()
    try:
        maintain = getattr(storage, "maintain", None)
        if maintain is None:
            return None
        started = time.monotonic()
        done = await maintain(min_interval_ms=0)
        return round(time.monotonic() - started, 2) if done else None
    finally:
        await storage.close()


async def settle(store: Store) -> None:
    """Before the clock starts: the state a table is kept in (see the module's docstring): one
    plain ``VACUUM (ANALYZE)``, unthrottled (the engine's maintenance, throttled as autovacuum
    is, ends in the same state, only slower on a table never vacuumed)."""
    if store.backend == "postgres":
        await store.sql(f"VACUUM (ANALYZE) {store.schema}.de_executions")


def median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return round(statistics.median(values), 3) if values else None


async def set_autovacuum(probe: Store, mode: str, restore: tuple[str, str] | None) -> None:
    """``on``: turn the server's autovacuum on; ``server``: put back the server's own setting
    (``restore``: its value and the file it came from)."""
    if restore is None:
        return
    if mode == "on":
        await probe.sql("ALTER SYSTEM SET autovacuum = on")
    elif restore[1].endswith("postgresql.auto.conf"):  # set by ALTER SYSTEM before us
        await probe.sql(f"ALTER SYSTEM SET autovacuum = {restore[0]}")
    else:
        await probe.sql("ALTER SYSTEM RESET autovacuum")
    await probe.sql("SELECT pg_reload_conf()")


async def rounds(
    big: Store, directory: str, base_ms: int, count: int, label: dict[str, Any]
) -> dict[str, Any]:
    """``count`` rounds of (a fresh empty store, then ``big``); the medians and ratios."""
    empty_runs: list[dict[str, Any]] = []
    big_runs: list[dict[str, Any]] = []
    for _ in range(count):
        empty = Store(big.backend, directory, f"empty{len(empty_runs)}")
        try:
            await empty.create()
            empty_runs.append(await measure(empty, base_ms))
        finally:
            await empty.drop()
        big_runs.append(await measure(big, base_ms))
        line = {**label, "empty": empty_runs[-1], "filled": big_runs[-1]}
        print(json.dumps(line), file=sys.stderr, flush=True)
    figures: dict[str, Any] = dict(label)
    for key in ("w1_tasks_per_s", "w2_p50_ms", "get_recent_p50_us"):
        at_zero, at_size = median(empty_runs, key), median(big_runs, key)
        figures[key] = {"empty": at_zero, "filled": at_size}
        if at_zero and at_size:
            figures[key]["ratio"] = round(at_size / at_zero, 3)
    if "w1_blocks_per_task" in big_runs[0]:
        figures["w1_blocks_per_task"] = {
            side: {
                kind: median([r["w1_blocks_per_task"] for r in runs], kind)
                for kind in sorted({k for r in runs for k in r["w1_blocks_per_task"]})
            }
            for side, runs in (("empty", empty_runs), ("filled", big_runs))
        }
    figures["get_history_p50_us"] = median(big_runs, "get_history_p50_us")
    figures["runs"] = {"empty": empty_runs, "filled": big_runs}
    return figures


async def run(args: argparse.Namespace, restore: tuple[str, str] | None) -> list[dict[str, Any]]:
    sizes = [int(s) for s in args.sizes.split(",")]
    modes = args.autovacuum.split(",") if args.backend == "postgres" else [None]
    base_ms = int(time.time() * 1000) - max(sizes) - 86_400_000  # older than anything new
    points = []
    with tempfile.TemporaryDirectory(dir=args.directory) as directory:
        big = Store(args.backend, directory, "big")
        await big.create()
        try:
            for size in sizes:
                fill_s = await big.grow(size, base_ms)
                if not args.keep_dead:
                    await settle(big)
                for mode in modes:
                    if mode is not None:
                        await set_autovacuum(big, mode, restore)
                    label = {"rows": size, "autovacuum": mode, "fill_s": round(fill_s, 1)}
                    figures = await rounds(big, directory, base_ms, args.rounds, label)
                    figures.update(await big.sizes())
                    figures["maintenance_pass_s"] = await timed_pass(big)
                    points.append(figures)
        finally:
            await big.drop()
    return points


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("backend", choices=["sqlite", "postgres"])
    parser.add_argument("--sizes", default="1000000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--autovacuum", default="server", help="server, on, or both: server,on")
    parser.add_argument("--keep-dead", action="store_true")
    parser.add_argument("--directory", default=None, help="where SQLite files go (default: /tmp)")
    args = parser.parse_args()
    if not set(args.autovacuum.split(",")) <= {"server", "on"}:
        parser.error("--autovacuum: server, on, or server,on")
    restore = None
    if args.backend == "postgres":
        probe = Store("postgres", "", "probe")
        setting, source = (
            await probe.sql("SELECT setting, sourcefile FROM pg_settings WHERE name = 'autovacuum'")
        )[0]
        restore = (str(setting), str(source))
    try:
        points = await run(args, restore)
    finally:
        if restore is not None:
            await set_autovacuum(probe, "server", restore)
    emit(
        {
            "engine": "durable_execution",
            "backend": args.backend,
            "workload": "scale",
            "server_autovacuum": None if restore is None else restore[0],
            "keep_dead": args.keep_dead,
            "rounds": args.rounds,
            "points": points,
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
