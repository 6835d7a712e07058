"""The SQLite schema: its numbered migrations, and the mapping between rows and records.

Like PostgreSQL's, the schema is a list of numbered migrations (:data:`MIGRATIONS`), applied in
order on first use, inside the storage's first write transaction (``BEGIN IMMEDIATE``: the
file's write lock, so processes starting together migrate once). ``de_schema_version`` holds
one row per applied migration. Migrations only add (tables, columns, indexes), so executors of
the previous release keep working on a migrated file while a rolling upgrade goes on; a
release refuses a file whose version is newer than its own.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from durable_execution.errors import StorageSchemaError
from durable_execution.storage.inspection import unsuccessful_or_sql
from durable_execution.storage.records import ExecutionRecord
from durable_execution.storage.rows import COLUMNS

__all__ = [
    "MIGRATIONS",
    "MUTABLE_COLUMNS",
    "SCHEMA_VERSION",
    "ensure_schema",
    "record_to_params",
]

TABLE = "de_executions"
VERSION_TABLE = "de_schema_version"
WORKERS_TABLE = "de_workers"


# What a state change may touch; identity, input, tree links and attributes never change.
MUTABLE_COLUMNS: tuple[str, ...] = (
    "status",
    *COLUMNS[COLUMNS.index("output") : COLUMNS.index("lease_token") + 1],
    "timeout_at",
    "lease_expiries",
    "children_policy",
)

_V1 = f"""
CREATE TABLE {TABLE} (
    execution_id TEXT PRIMARY KEY NOT NULL,
    task_id TEXT NOT NULL,
    input TEXT NOT NULL,
    status TEXT NOT NULL,
    root_execution_id TEXT,
    parent_execution_id TEXT,
    index_in_parent INTEGER NOT NULL DEFAULT 0,
    is_finalize INTEGER NOT NULL DEFAULT 0,
    priority INTEGER NOT NULL DEFAULT 0,
    idempotency_key TEXT,
    output TEXT,
    run_output TEXT,
    error TEXT,
    retry_attempts INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    start_at INTEGER NOT NULL,
    started_at INTEGER,
    expires_at INTEGER,
    finished_at INTEGER,
    children_count INTEGER NOT NULL DEFAULT 0,
    unfinished_children INTEGER NOT NULL DEFAULT 0,
    failed_children INTEGER NOT NULL DEFAULT 0,
    finalize_execution_id TEXT,
    close_state TEXT NOT NULL DEFAULT 'open',
    needs_promise_cancellation INTEGER NOT NULL DEFAULT 0,
    executor_id TEXT,
    lease_token INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX de_ready_idx ON {TABLE} (priority DESC, start_at, execution_id)
    WHERE status = 'ready';
CREATE INDEX de_running_idx ON {TABLE} (expires_at) WHERE status = 'running';
CREATE INDEX de_close_idx ON {TABLE} (execution_id) WHERE close_state = 'ready';
CREATE INDEX de_advance_idx ON {TABLE} (execution_id)
    WHERE status = 'waiting_for_children' AND (unfinished_children = 0 OR failed_children > 0);
CREATE INDEX de_children_idx ON {TABLE} (parent_execution_id, index_in_parent)
    WHERE parent_execution_id IS NOT NULL;
CREATE INDEX de_cancel_idx ON {TABLE} (executor_id) WHERE needs_promise_cancellation = 1;
CREATE UNIQUE INDEX de_idempotency_idx ON {TABLE} (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
"""

# 2: attributes, free metadata on every execution (the JSON text of an object, or NULL).
_V2 = f"""
ALTER TABLE {TABLE} ADD COLUMN attributes TEXT;
"""

# 3: heartbeat leases. ``timeout_at``, the backstop of a claim (its start plus the task's
# timeout and leeway; a renewed lease never goes past it; NULL in rows claimed by release
# 0.1.0, whose lease is already that long), and ``lease_expiries``, how many times the
# execution's lease expired; the ready suspects (see transitions.SUSPECT_LEASE_EXPIRIES) get
# an index of their own, so that a claim finds the first one without scanning the others.
_V3 = f"""
ALTER TABLE {TABLE} ADD COLUMN timeout_at INTEGER;
ALTER TABLE {TABLE} ADD COLUMN lease_expiries INTEGER NOT NULL DEFAULT 0;
CREATE INDEX de_suspect_idx ON {TABLE} (priority DESC, start_at, execution_id)
    WHERE status = 'ready' AND lease_expiries >= 2;
"""

# The worker registry: one row per executor that runs (storage/workers.py). Its number
# follows the executions table's migrations.
WORKERS_VERSION = 4
_V_WORKERS = f"""
CREATE TABLE {WORKERS_TABLE} (
    executor_id TEXT PRIMARY KEY NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    task_ids TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
) WITHOUT ROWID;
"""

# 5: settled children. ``children_policy``, how a parent treats a child that does not
# complete (see durable_execution.children_policy); rows of earlier releases are
# ``fail_fast``, the only policy they knew.
SETTLED_VERSION = 5
_V_SETTLED = f"""
ALTER TABLE {TABLE} ADD COLUMN children_policy TEXT NOT NULL DEFAULT 'fail_fast';
"""

# 6: sleeping executions (``executor.sleeping_task``): ``unique_id``, the id a wake-up finds
# a sleeping execution by, unique per task among the sleeping ones (a finished execution's
# id may be used again), and indexed for all of them (a late wake-up reads the finished
# one); the sleeping ones are found by their deadline (``expires_at``) when they time out.
# (SQLite has no CHECK on the status: nothing else to change.)
SLEEPING_VERSION = 6
SLEEPING_INDEX = "de_sleeping_idx"
_V_SLEEPING = f"""
ALTER TABLE {TABLE} ADD COLUMN unique_id TEXT;
CREATE UNIQUE INDEX {SLEEPING_INDEX} ON {TABLE} (task_id, unique_id) WHERE status = 'sleeping';
CREATE INDEX de_sleep_deadline_idx ON {TABLE} (expires_at) WHERE status = 'sleeping';
CREATE INDEX de_unique_id_idx ON {TABLE} (task_id, unique_id) WHERE unique_id IS NOT NULL;
"""

# 7: the query ability (storage/sqlite/inspection.py). A listing goes by the primary key,
# newest first (ids begin with their creation time), and only the unsuccessful statuses get an
# index of their own: a row that is not and does not become unsuccessful never enters it (its
# condition is evaluated at each status change, hence equalities rather than an IN list: see
# inspection.unsuccessful_or_sql). Indexes of the task and of the roots, though written only
# at insert (SQLite maintains an index on an UPDATE only when a column it holds or its
# condition reads changes), cost W1 about a fifth more CPU time: those filters walk the key.
QUERIES_VERSION = 7
UNSUCCESSFUL_CONDITION = unsuccessful_or_sql("status")
"""The condition of ``de_unsuccessful_idx`` (never changed: the index is made of it)."""
_V_QUERIES = f"""
CREATE INDEX de_unsuccessful_idx ON {TABLE} (execution_id) WHERE {UNSUCCESSFUL_CONDITION};
"""

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (1, _V1),
    (2, _V2),
    (3, _V3),
    (WORKERS_VERSION, _V_WORKERS),
    (SETTLED_VERSION, _V_SETTLED),
    (SLEEPING_VERSION, _V_SLEEPING),
    (QUERIES_VERSION, _V_QUERIES),
)
"""``(version, script)`` in order; each script is one or more statements."""

SCHEMA_VERSION = MIGRATIONS[-1][0]
"""The schema version this code writes and reads."""


def ensure_schema(conn: sqlite3.Connection, path: str) -> None:
    """Create the schema, or migrate it to :data:`SCHEMA_VERSION`; check that it is ours.

    Runs inside the caller's write transaction, so concurrent first starts are safe and a
    migration is applied whole or not at all.
    """
    version = _stored_version(conn, path)
    if version is None:
        conn.execute(f"CREATE TABLE {VERSION_TABLE} (version INTEGER NOT NULL)")
        version = 0
    for target, script in MIGRATIONS:
        if target > version:
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"INSERT INTO {VERSION_TABLE} (version) VALUES (?)", (target,))


def _stored_version(conn: sqlite3.Connection, path: str) -> int | None:
    """The stored schema version; ``None`` when the file holds nothing of ours yet."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if VERSION_TABLE not in tables:
        if TABLE in tables:
            raise StorageSchemaError(
                f"{path} has a table {TABLE} that durable_execution did not create "
                "(no schema version table); use another file"
            )
        return None
    row = conn.execute(f"SELECT max(version) FROM {VERSION_TABLE}").fetchone()
    version = row[0] if row else None
    if not isinstance(version, int):
        raise StorageSchemaError(f"{path}: the schema version table is empty or corrupt")
    if version > SCHEMA_VERSION:
        raise StorageSchemaError(
            f"{path} was written by a newer durable_execution (schema version {version}, "
            f"this version reads up to {SCHEMA_VERSION}); upgrade durable_execution"
        )
    return version


def record_to_params(record: ExecutionRecord) -> dict[str, Any]:
    """The column values of ``record``, keyed by column name."""
    return {
        "execution_id": record.execution_id,
        "task_id": record.task_id,
        "input": record.input,
        "status": record.status.value,
        "root_execution_id": record.root_execution_id,
        "parent_execution_id": record.parent_execution_id,
        "index_in_parent": record.index_in_parent,
        "is_finalize": int(record.is_completion),
        "priority": record.priority,
        "idempotency_key": record.idempotency_key,
        "output": record.output,
        "run_output": record.run_output,
        "error": None if record.error is None else record.error.to_json(),
        "retry_attempts": record.retry_attempts,
        "created_at": record.created_at_ms,
        "updated_at": record.updated_at_ms,
        "start_at": record.start_at_ms,
        "started_at": record.started_at_ms,
        "expires_at": record.expires_at_ms,
        "finished_at": record.finished_at_ms,
        "children_count": record.children_count,
        "unfinished_children": record.unfinished_children,
        "failed_children": record.failed_children,
        "finalize_execution_id": record.completion_execution_id,
        "close_state": record.close_state.value,
        "needs_promise_cancellation": int(record.stop_requested),
        "executor_id": record.executor_id,
        "lease_token": record.lease_token,
        "attributes": record.attributes,
        "timeout_at": record.timeout_at_ms,
        "lease_expiries": record.lease_expiries,
        "children_policy": record.children_policy,
        "unique_id": record.unique_id,
    }
