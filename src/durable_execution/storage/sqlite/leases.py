"""The lease operations of the SQLite storage: claims, renewals, expiry and release.

Each function runs inside the storage's write transaction (``BEGIN IMMEDIATE``) on its
connection thread, and adds to ``kinds`` the work it created.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence

from durable_execution.storage.records import ExecutionRecord, WorkKind
from durable_execution.storage.rows import COLUMNS, record_from_row
from durable_execution.storage.sql_rules import (
    renewable_sql,
    renewed_expires_sql,
    suspect_sql,
)
from durable_execution.storage.sqlite.schema import TABLE, record_to_params
from durable_execution.storage.sqlite.statements import SELECT, UPDATE
from durable_execution.storage.transitions import apply_expiry, claim_times, record_work

__all__ = ["claim_ready_executions", "expire_leases", "release_executions", "renew_leases"]

_ORDER = "ORDER BY priority DESC, start_at, execution_id"
_SUSPECT = suspect_sql()

# The heartbeat of one executor: every lease it holds, as one JSON array of
# [execution id, lease token], renewed in one statement (see renew_leases in protocol.py).
_RENEW = (
    f"UPDATE {TABLE} AS t SET expires_at = {renewed_expires_sql('t', '?1', '?2')} "
    "FROM (SELECT json_extract(value, '$[0]') AS execution_id, "
    "json_extract(value, '$[1]') AS lease_token FROM json_each(?3)) AS v "
    "WHERE t.execution_id = v.execution_id AND t.lease_token = v.lease_token "
    f"AND t.executor_id = ?4 AND {renewable_sql('t', '?1')} "
    "RETURNING execution_id, lease_token"
)

_MAKE_READY = (
    f"UPDATE {TABLE} SET status = 'ready', executor_id = NULL, "
    "lease_token = lease_token + 1, expires_at = NULL, start_at = ?, updated_at = ? "
    "WHERE execution_id = ? AND status = 'running' AND lease_token = ?"
)


def _per_task(values: Mapping[str, int], task_ids: Sequence[str]) -> tuple[str, list[str | int]]:
    """An SQL expression giving each claimed row its task's value, and its parameters: one
    parameter when every task has the same value (the common case), else a ``CASE``."""
    distinct = set(values.values())
    if len(distinct) == 1:
        return "?", [*distinct]
    return f"CASE task_id {'WHEN ? THEN ? ' * len(task_ids)}END", [
        v for task_id in task_ids for v in (task_id, values[task_id])
    ]


def _picked(
    task_ids: Sequence[str], limit: int, max_suspects: int | None
) -> tuple[str, list[str | int]]:
    """The subquery picking the ids to claim (``?2`` is the time), and its parameters.

    With a suspect limit, the first non-suspects and the first suspects (read from an index
    of their own: when there is none, it costs next to nothing) are merged in claim order.
    """
    marks = ", ".join("?" * len(task_ids))
    ready = f"status = 'ready' AND start_at <= ?2 AND task_id IN ({marks})"
    if max_suspects is None:
        return f"SELECT execution_id FROM {TABLE} WHERE {ready} {_ORDER} LIMIT ?", [
            *task_ids,
            limit,
        ]
    healthy = (
        f"SELECT execution_id, priority, start_at FROM {TABLE} "
        f"WHERE {ready} AND NOT ({_SUSPECT}) {_ORDER} LIMIT ?"
    )
    if max_suspects <= 0:
        return f"SELECT execution_id FROM ({healthy})", [*task_ids, limit]
    suspects = (
        f"SELECT execution_id, priority, start_at FROM {TABLE} WHERE status = 'ready' "
        f"AND {_SUSPECT} AND start_at <= ?2 AND task_id IN ({marks}) {_ORDER} LIMIT ?"
    )
    sql = (
        f"SELECT execution_id FROM (SELECT * FROM ({healthy}) UNION ALL "
        f"SELECT * FROM ({suspects})) {_ORDER} LIMIT ?"
    )
    return sql, [*task_ids, limit, *task_ids, min(max_suspects, limit), limit]


def claim_ready_executions(
    conn: sqlite3.Connection,
    *,
    executor_id: str,
    lease_ms_by_task: Mapping[str, int],
    now_ms: int,
    limit: int,
    lease_ms: int | None,
    max_suspects: int | None,
) -> list[ExecutionRecord]:
    """Claim ready executions in one statement (see the protocol): pick the
    next ready rows in the ready index's order, take them, and return them (in no set
    order: sorted back here)."""
    task_ids = list(lease_ms_by_task)
    times = {t: claim_times(0, timeout, lease_ms) for t, timeout in lease_ms_by_task.items()}
    expires_sql, expires_params = _per_task({t: v[0] for t, v in times.items()}, task_ids)
    timeout_sql, timeout_params = _per_task({t: v[1] for t, v in times.items()}, task_ids)
    picked, pick_params = _picked(task_ids, limit, max_suspects)
    sql = (
        f"UPDATE {TABLE} SET status = 'running', executor_id = ?1, "
        f"lease_token = lease_token + 1, started_at = ?2, expires_at = ?2 + {expires_sql}, "
        f"timeout_at = ?2 + {timeout_sql}, updated_at = ?2 "
        f"WHERE execution_id IN ({picked}) RETURNING {', '.join(COLUMNS)}"
    )
    params = (executor_id, now_ms, *expires_params, *timeout_params, *pick_params)
    records = [record_from_row(row) for row in conn.execute(sql, params)]
    records.sort(key=lambda r: (-r.priority, r.start_at_ms, r.execution_id))
    return records


def renew_leases(
    conn: sqlite3.Connection,
    *,
    executor_id: str,
    leases: Sequence[tuple[str, int]],
    now_ms: int,
    lease_ms: int,
) -> list[bool]:
    """Renew the leases ``executor_id`` holds, in one statement (see the protocol)."""
    batch = json.dumps([[execution_id, token] for execution_id, token in leases])
    renewed = {
        (row[0], row[1]) for row in conn.execute(_RENEW, (now_ms, lease_ms, batch, executor_id))
    }
    return [lease in renewed for lease in leases]


def expire_leases(
    conn: sqlite3.Connection,
    kinds: set[WorkKind],
    *,
    now_ms: int,
    limit: int,
    max_lease_expiries: int | None,
) -> list[str]:
    """Take back expired leases (see the protocol): the rule is
    :func:`~durable_execution.storage.transitions.apply_expiry`, applied to the loaded rows."""
    sql = f"{SELECT} WHERE status = 'running' AND expires_at < ? ORDER BY expires_at LIMIT ?"
    records = [record_from_row(row) for row in conn.execute(sql, (now_ms, limit))]
    for record in records:
        apply_expiry(record, now_ms, max_lease_expiries)
        kinds.update(record_work(record))
    _save(conn, records)
    return [record.execution_id for record in records]


def release_executions(
    conn: sqlite3.Connection,
    kinds: set[WorkKind],
    *,
    leases: Sequence[tuple[str, int]],
    now_ms: int,
) -> list[bool]:
    """Give back running executions as ready (see the protocol)."""
    released = [
        conn.execute(_MAKE_READY, (now_ms, now_ms, execution_id, token)).rowcount == 1
        for execution_id, token in leases
    ]
    if any(released):
        kinds.add(WorkKind.READY)
    return released


def _save(conn: sqlite3.Connection, records: Iterable[ExecutionRecord]) -> None:
    conn.executemany(UPDATE, [record_to_params(r) for r in records])
