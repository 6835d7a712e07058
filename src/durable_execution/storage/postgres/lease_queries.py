"""The SQL of the lease operations: claims, renewals (heartbeats), expiry and release.

Templates in the conventions of :mod:`.queries` (``{t}`` the table, ``{finished}`` the
finished statuses, ``%(now)s`` the executor's clock), rendered there with the others.
"""

from __future__ import annotations

from durable_execution.storage.postgres.fragments import COLS, NOW, cols, exists, notify_tail
from durable_execution.storage.sql_rules import (
    expiry_crashes_sql,
    finish_close_state_sql,
    renewable_sql,
    renewed_expires_sql,
    suspect_sql,
)

__all__ = ["CLAIM_READY", "EXPIRE", "RELEASE", "RENEW"]

_ORDER = "ORDER BY priority DESC, start_at, execution_id"
_READY = f"status = 'ready' AND start_at <= {NOW} AND task_id = ANY(%(task_ids)s::text[])"

# Claiming: the first ready rows in claim order, at most %(max_suspects)s of them suspects
# (NULL: no limit). Healthy rows come from the ready index, suspects from an index of their
# own (none: nothing to read), merged in claim order. Each claimed row gets its task's lease
# and backstop (arrays in the order of the task ids, made by transitions.claim_times).
CLAIM_READY = f"""
WITH healthy AS (
    SELECT execution_id, task_id, priority, start_at FROM {{t}}
    WHERE {_READY}
        AND (%(max_suspects)s::int IS NULL OR NOT ({suspect_sql()}))
    {_ORDER}
    LIMIT %(limit)s::bigint
    FOR UPDATE SKIP LOCKED
), suspects AS (
    SELECT execution_id, task_id, priority, start_at FROM {{t}}
    WHERE status = 'ready' AND {suspect_sql()} AND start_at <= {NOW}
        AND task_id = ANY(%(task_ids)s::text[])
    {_ORDER}
    LIMIT LEAST(COALESCE(%(max_suspects)s::int, 0), %(limit)s::bigint)
    FOR UPDATE SKIP LOCKED
), picked AS (
    SELECT * FROM healthy UNION ALL SELECT * FROM suspects
    {_ORDER}
    LIMIT %(limit)s::bigint
), claimed AS (
    UPDATE {{t}} AS e
    SET status = 'running', executor_id = %(executor_id)s::text,
        lease_token = e.lease_token + 1, started_at = {NOW},
        expires_at = {NOW} + l.lease_ms, timeout_at = {NOW} + l.timeout_ms, updated_at = {NOW}
    FROM picked AS p
    JOIN unnest(%(task_ids)s::text[], %(leases)s::bigint[], %(timeouts)s::bigint[])
        AS l(task_id, lease_ms, timeout_ms)
        ON l.task_id = p.task_id
    WHERE e.execution_id = p.execution_id
    RETURNING {cols("e")}
)
SELECT {COLS} FROM claimed {_ORDER}
"""

# The heartbeat of one executor: every lease it holds, in one statement. The rows are locked
# in id order first, the order closers lock them in; a row being written is waited for, not
# skipped (a skipped lease would look lost).
RENEW = f"""
WITH l AS (
    SELECT * FROM unnest(%(ids)s::text[], %(tokens)s::bigint[]) AS l(execution_id, lease_token)
), locked AS MATERIALIZED (
    SELECT execution_id FROM {{t}}
    WHERE execution_id = ANY(%(ids)s::text[])
    ORDER BY execution_id
    FOR UPDATE
)
UPDATE {{t}} AS e SET expires_at = {renewed_expires_sql("e", NOW, "%(lease)s::bigint")}
FROM l
WHERE e.execution_id = ANY(%(ids)s::text[]) AND e.execution_id = l.execution_id
    AND e.lease_token = l.lease_token AND e.executor_id = %(executor_id)s::text
    AND {renewable_sql("e", NOW)} AND (SELECT count(*) FROM locked) >= 0
RETURNING e.execution_id, e.lease_token
"""

# The error of transitions.crashed_error, for the row ``e`` as it was before its expiry.
_CRASHED_ERROR = (
    "json_build_object('message', format('Task %%s (%%s) crashed: its executor died %%s "
    "times while running it (its lease expired each time); it is not run again', "
    "e.task_id, e.execution_id, e.lease_expiries + 1), "
    "'error_type', 'crashed', 'is_retryable', false)::text"
)
_CRASHES = expiry_crashes_sql("e", "%(max_expiries)s::int")

# Expiry (transitions.apply_expiry): one more lease expired; ready again, or failed as crashed.
EXPIRE = f"""
WITH picked AS (
    SELECT execution_id FROM {{t}}
    WHERE status = 'running' AND expires_at < {NOW}
    ORDER BY expires_at
    LIMIT %(limit)s::bigint
    FOR UPDATE SKIP LOCKED
), changed AS (
    UPDATE {{t}} AS e SET
        lease_expiries = e.lease_expiries + 1,
        status = CASE WHEN {_CRASHES} THEN 'failed' ELSE 'ready' END,
        executor_id = NULL, lease_token = e.lease_token + 1, expires_at = NULL,
        updated_at = {NOW},
        start_at = CASE WHEN {_CRASHES} THEN e.start_at ELSE {NOW} END,
        output = CASE WHEN {_CRASHES} THEN NULL ELSE e.output END,
        error = CASE WHEN {_CRASHES} THEN {_CRASHED_ERROR} ELSE e.error END,
        finished_at = CASE WHEN {_CRASHES} THEN {NOW} ELSE e.finished_at END,
        close_state = CASE WHEN {_CRASHES} THEN {finish_close_state_sql("e", "'failed'")}
            ELSE e.close_state END
    FROM picked AS p
    WHERE e.execution_id = p.execution_id
    RETURNING e.execution_id, e.status, e.close_state
)
SELECT execution_id, status, close_state FROM changed
{
    notify_tail(
        3,
        [
            ("ready", exists("changed", "status = 'ready'")),
            ("close", exists("changed", "close_state = 'ready'")),
        ],
    )
}
"""

# Release at shutdown: ready again, no retry attempt and no lease expiry counted.
RELEASE = f"""
WITH l AS (
    SELECT * FROM unnest(%(ords)s::int[], %(ids)s::text[], %(tokens)s::bigint[])
        AS l(ord, execution_id, lease_token)
), changed AS (
    UPDATE {{t}} AS e SET
        status = 'ready', executor_id = NULL, lease_token = e.lease_token + 1,
        expires_at = NULL, start_at = {NOW}, updated_at = {NOW}
    FROM l
    WHERE e.execution_id = ANY(%(ids)s::text[]) AND e.execution_id = l.execution_id
        AND e.status = 'running' AND e.lease_token = l.lease_token
    RETURNING l.ord
)
SELECT ord FROM changed
{notify_tail(1, [("ready", exists("changed"))])}
"""
