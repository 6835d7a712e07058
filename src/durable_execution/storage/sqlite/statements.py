"""The SQL statements of the SQLite storage that are fixed text (the others are built per
call, for their lists of ids)."""

from __future__ import annotations

from durable_execution.storage.rows import COLUMNS
from durable_execution.storage.sql_rules import (
    FINISHED_SQL,
    counted_failures_sql,
    outcome_close_state_sql,
)
from durable_execution.storage.sqlite.schema import MUTABLE_COLUMNS, TABLE

__all__ = [
    "CLOSE_IN_PARENT",
    "COUNT_SUCCESSOR",
    "FINISH",
    "FINISH_BATCH",
    "FINISH_BATCH_MIN",
    "INSERT",
    "SELECT",
    "SUCCEED",
    "UPDATE",
]

# Whether the parent of the row has an outcome in the same call (ids: the call's, as JSON).
_PARENT_IN_CALL = "{row}parent_execution_id IN (SELECT value FROM json_each({ids}))"
SELECT = f"SELECT {', '.join(COLUMNS)} FROM {TABLE}"
# A new row: every other column starts at its default (see the schema).
INSERT = (
    f"INSERT INTO {TABLE} (execution_id, task_id, input, status, root_execution_id, "
    "parent_execution_id, index_in_parent, is_finalize, priority, idempotency_key, created_at, "
    "updated_at, start_at, executor_id, lease_token, started_at, expires_at, timeout_at, "
    "attributes, unique_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?11, ?11, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# The common outcome, a run that finished without children, for a whole batch in one statement:
# the outcomes travel as one JSON array of [execution id, expected status, lease token, status,
# output, error, run output]. One statement instead of one per outcome saves a statement's
# reset, binding and step per outcome (measured: docs/performance.md, "What changed to get
# here").
FINISH_BATCH = (
    f"UPDATE {TABLE} AS t SET status = v.status, output = v.output, error = v.error, "
    "finished_at = ?1, updated_at = ?1, run_output = coalesce(v.run_output, t.run_output), "
    "executor_id = NULL, expires_at = NULL, "
    "close_state = "
    f"{outcome_close_state_sql('t', 'v.status', _PARENT_IN_CALL.format(row='t.', ids='?3'))} "
    "FROM (SELECT json_extract(value, '$[0]') AS execution_id, "
    "json_extract(value, '$[1]') AS expected_status, json_extract(value, '$[2]') AS lease_token, "
    "json_extract(value, '$[3]') AS status, json_extract(value, '$[4]') AS output, "
    "json_extract(value, '$[5]') AS error, json_extract(value, '$[6]') AS run_output "
    "FROM json_each(?2)) AS v WHERE t.execution_id = v.execution_id "
    "AND t.status = v.expected_status AND t.lease_token = v.lease_token "
    "RETURNING execution_id, close_state, parent_execution_id, status"
)
# The same for one outcome, cheaper for a few: before its first row, the batch statement costs
# about as much as four of these (see FINISH_BATCH_MIN and docs/performance.md).
FINISH = (
    f"UPDATE {TABLE} SET status = ?1, output = ?2, error = ?3, finished_at = ?4, "
    "updated_at = ?4, run_output = coalesce(?5, run_output), executor_id = NULL, "
    "expires_at = NULL, close_state = "
    f"{outcome_close_state_sql('', '?1', _PARENT_IN_CALL.format(row='', ids='?9'))} "
    "WHERE execution_id = ?6 AND status = ?7 AND lease_token = ?8 "
    "RETURNING execution_id, close_state, parent_execution_id, status"
)
FINISH_BATCH_MIN = 5
# A child that completed and hands over to its successor (see ExecutionOutcome.successor).
SUCCEED = (
    f"UPDATE {TABLE} SET status = 'completed', output = ?1, finished_at = ?2, updated_at = ?2, "
    "run_output = coalesce(?3, run_output), executor_id = NULL, expires_at = NULL, "
    "close_state = 'closed' WHERE execution_id = ?4 AND status = ?5 AND lease_token = ?6 "
    "AND parent_execution_id = ?7 AND is_finalize = 0 RETURNING 1"
)
COUNT_SUCCESSOR = (
    f"UPDATE {TABLE} SET children_count = children_count + 1, updated_at = ?1 "
    "WHERE execution_id = ?2"
)
# A parent whose children were closed by their outcomes (the closure's update of the parent,
# transitions.apply_close, for children other than completion tasks); a finished parent is
# left as it is.
CLOSE_IN_PARENT = (
    f"UPDATE {TABLE} SET unfinished_children = max(0, unfinished_children - ?1), "
    f"failed_children = failed_children + {counted_failures_sql('', '?2')}, updated_at = ?3 "
    f"WHERE execution_id = ?4 AND status NOT IN {FINISHED_SQL} "
    "RETURNING status, unfinished_children, failed_children"
)
UPDATE = (
    f"UPDATE {TABLE} SET {', '.join(f'{c} = :{c}' for c in MUTABLE_COLUMNS)} "
    "WHERE execution_id = :execution_id"
)
