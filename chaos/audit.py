"""The audit log: every status change of every execution, written by the database itself.

A trigger on the executions table (SQLite has triggers too) appends a row to ``chaos_audit``
in the same transaction as the change, so the audit cannot miss a change nor see one that was
rolled back:

- each insert (``old_status`` NULL: ``ready``, or ``running`` when inserted already claimed);
- each update that changes the status;
- each update of a finished execution that changes its output, error or end time (a *rewrite*:
  ``old_status`` equals ``new_status``). Closing a finished execution changes none of them, so
  a rewrite can only be a result recorded a second time: what fencing forbids.

On PostgreSQL the table and the trigger function live in the scenario's own schema; on SQLite
in the scenario's file. The harness installs them after the storage created its tables and
before any worker starts.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from durable_execution.status import FINISHED_STATUSES

__all__ = ["AuditRow", "install_postgres_audit", "install_sqlite_audit", "read_audit"]

_FINISHED = ", ".join(sorted(f"'{status.value}'" for status in FINISHED_STATUSES))
_REWRITE = (
    f"OLD.status IN ({_FINISHED}) AND (NEW.output IS DISTINCT FROM OLD.output"
    " OR NEW.error IS DISTINCT FROM OLD.error OR NEW.finished_at IS DISTINCT FROM OLD.finished_at)"
)


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One status change (or rewrite) of one execution, in the order the database made them."""

    seq: int
    execution_id: str
    old_status: str | None  # None: the insert
    new_status: str
    executor_id: str | None
    lease_token: int
    at: float  # unix time, the database's clock (the same host's)


_SQLITE_COLUMNS = "execution_id, old_status, new_status, executor_id, lease_token, at"
_SQLITE_NOW = "(julianday('now') - 2440587.5) * 86400.0"
_SQLITE_AUDIT = f"""
CREATE TABLE chaos_audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id TEXT NOT NULL,
    old_status TEXT,
    new_status TEXT NOT NULL,
    executor_id TEXT,
    lease_token INTEGER NOT NULL,
    at REAL NOT NULL
);
CREATE TRIGGER chaos_audit_insert AFTER INSERT ON de_executions BEGIN
    INSERT INTO chaos_audit ({_SQLITE_COLUMNS}) VALUES (NEW.execution_id, NULL, NEW.status,
        NEW.executor_id, NEW.lease_token, {_SQLITE_NOW});
END;
CREATE TRIGGER chaos_audit_update AFTER UPDATE ON de_executions
WHEN NEW.status IS NOT OLD.status OR ({_REWRITE.replace("IS DISTINCT FROM", "IS NOT")})
BEGIN
    INSERT INTO chaos_audit ({_SQLITE_COLUMNS}) VALUES (NEW.execution_id, OLD.status,
        NEW.status, NEW.executor_id, NEW.lease_token, {_SQLITE_NOW});
END;
"""

_POSTGRES_AUDIT = f"""
CREATE TABLE {{schema}}.chaos_audit (
    seq bigserial PRIMARY KEY,
    execution_id text NOT NULL,
    old_status text,
    new_status text NOT NULL,
    executor_id text,
    lease_token bigint NOT NULL,
    at double precision NOT NULL DEFAULT extract(epoch FROM clock_timestamp())
);
CREATE FUNCTION {{schema}}.chaos_audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO {{schema}}.chaos_audit (execution_id, old_status, new_status, executor_id,
            lease_token) VALUES (NEW.execution_id, NULL, NEW.status, NEW.executor_id,
            NEW.lease_token);
    ELSIF NEW.status IS DISTINCT FROM OLD.status OR ({_REWRITE}) THEN
        INSERT INTO {{schema}}.chaos_audit (execution_id, old_status, new_status, executor_id,
            lease_token) VALUES (NEW.execution_id, OLD.status, NEW.status, NEW.executor_id,
            NEW.lease_token);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER chaos_audit AFTER INSERT OR UPDATE ON {{schema}}.de_executions
    FOR EACH ROW EXECUTE FUNCTION {{schema}}.chaos_audit_row();
"""

_SELECT = (
    "SELECT seq, execution_id, old_status, new_status, executor_id, lease_token, at "
    "FROM {table} ORDER BY seq"
)


def install_sqlite_audit(path: Path) -> None:
    """Add the audit table and triggers to the SQLite file at ``path`` (its tables exist)."""
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        conn.executescript(f"BEGIN IMMEDIATE; {_SQLITE_AUDIT} COMMIT;")
    finally:
        conn.close()


async def install_postgres_audit(dsn: str, schema: str) -> None:
    """Add the audit table, function and trigger to ``schema`` (its tables exist)."""
    import psycopg

    script = _POSTGRES_AUDIT.replace("{schema}", _quoted(schema))
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(script.encode())


async def read_audit(
    *, sqlite_path: Path | None = None, dsn: str = "", schema: str = ""
) -> list[AuditRow]:
    """Every audit row, in order: from the SQLite file, or from ``schema`` on ``dsn``."""
    if sqlite_path is not None:
        return await asyncio.to_thread(_read_sqlite, sqlite_path)
    import psycopg

    query = _SELECT.format(table=f"{_quoted(schema)}.chaos_audit")
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cursor = await conn.execute(query.encode())
        return [_row(values) for values in await cursor.fetchall()]


def _read_sqlite(path: Path) -> list[AuditRow]:
    conn = sqlite3.connect(path, timeout=30)
    try:
        return [_row(values) for values in conn.execute(_SELECT.format(table="chaos_audit"))]
    finally:
        conn.close()


def _row(values: Any) -> AuditRow:
    seq, execution_id, old, new, executor_id, token, at = values
    return AuditRow(int(seq), execution_id, old, new, executor_id, int(token), float(at))


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
