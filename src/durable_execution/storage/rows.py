"""Execution rows as the SQL backends store them: the column list and the row decoding.

Both SQL backends keep one row per execution with these columns (times as integer
milliseconds, errors as the JSON of :meth:`DurableExecutionErrorInfo.to_json`, booleans as the
database's booleans or 0/1) and decode a row the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from durable_execution.errors import DurableExecutionErrorInfo, SerializationError
from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.records import CloseState, ExecutionRecord

__all__ = [
    "COLUMNS",
    "FIELD_OF_COLUMN",
    "error_from_json",
    "record_from_row",
]

# Columns in record order; times are integer milliseconds since the epoch (UTC). Three keep
# the names of the first schema, so that executors of an earlier release keep working on a
# migrated database during a rolling upgrade (migrations only add): ``is_finalize`` is the
# record's ``is_completion``, ``finalize_execution_id`` its ``completion_execution_id`` and
# ``needs_promise_cancellation`` its ``stop_requested``.
COLUMNS: tuple[str, ...] = (
    "execution_id",
    "task_id",
    "input",
    "status",
    "root_execution_id",
    "parent_execution_id",
    "index_in_parent",
    "is_finalize",
    "priority",
    "idempotency_key",
    "output",
    "run_output",
    "error",
    "retry_attempts",
    "created_at",
    "updated_at",
    "start_at",
    "started_at",
    "expires_at",
    "finished_at",
    "children_count",
    "unfinished_children",
    "failed_children",
    "finalize_execution_id",
    "close_state",
    "needs_promise_cancellation",
    "executor_id",
    "lease_token",
    "attributes",
    "timeout_at",
    "lease_expiries",
    "children_policy",
    "unique_id",
)


FIELD_OF_COLUMN: dict[str, str] = {
    "is_finalize": "is_completion",
    "finalize_execution_id": "completion_execution_id",
    "needs_promise_cancellation": "stop_requested",
}
"""The record field of each column whose name differs (see :data:`COLUMNS`)."""


def error_from_json(text: str | None) -> DurableExecutionErrorInfo | None:
    """The stored error (``None`` stays ``None``)."""
    return None if text is None else DurableExecutionErrorInfo.from_json(text)


_STATUSES = {status.value: status for status in S}
_CLOSE_STATES = {state.value: state for state in CloseState}
_WIDTH = len(COLUMNS)
_STATUS, _IS_COMPLETION, _ERROR, _CLOSE_STATE, _STOP_REQUESTED = (
    COLUMNS.index(name)
    for name in ("status", "is_finalize", "error", "close_state", "needs_promise_cancellation")
)


def record_from_row(row: Sequence[Any], child_ids: Sequence[str] | None = None) -> ExecutionRecord:
    """Build a record from a row selected as :data:`COLUMNS`, which are in the order of the
    record's fields: the record is built positionally (a claim decodes 100 rows at a time)."""
    values = list(row[:_WIDTH])
    status, close_state, error = values[_STATUS], values[_CLOSE_STATE], values[_ERROR]
    values[_STATUS] = _STATUSES[status] if status in _STATUSES else S(status)
    values[_CLOSE_STATE] = (
        _CLOSE_STATES[close_state] if close_state in _CLOSE_STATES else CloseState(close_state)
    )
    try:
        values[_ERROR] = error_from_json(error)
    except (ValueError, KeyError, TypeError) as exc:  # not written by to_json: a damaged row
        raise SerializationError(
            f"Cannot decode the error of execution {values[0]}: {type(exc).__name__}: {exc}"
        ) from exc
    values[_IS_COMPLETION] = bool(values[_IS_COMPLETION])  # 0/1 on SQLite
    values[_STOP_REQUESTED] = bool(values[_STOP_REQUESTED])
    values.append(tuple(child_ids) if child_ids else ())  # child_execution_ids
    return ExecutionRecord(*values)
