"""Execution rows as the SQL backends store them: the column list and the row decoding.

Both SQL backends keep one row per execution with these columns (times as integer
milliseconds, errors as the JSON of :meth:`DurableExecutionErrorInfo.to_json`, booleans as the
database's booleans or 0/1) and decode a row the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from durable_execution.errors import DurableExecutionErrorInfo
from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.records import CloseState, ExecutionRecord

__all__ = ["COLUMNS", "error_from_json", "record_from_row"]

# Columns in record order; times are integer milliseconds since the epoch (UTC).
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
)


def error_from_json(text: str | None) -> DurableExecutionErrorInfo | None:
    """The stored error (``None`` stays ``None``)."""
    return None if text is None else DurableExecutionErrorInfo.from_json(text)


def record_from_row(row: Sequence[Any], child_ids: Sequence[str] | None = None) -> ExecutionRecord:
    """Build a record from a row selected as :data:`COLUMNS`."""
    (
        execution_id,
        task_id,
        input_,
        status,
        root_id,
        parent_id,
        index_in_parent,
        is_finalize,
        priority,
        idempotency_key,
        output,
        run_output,
        error,
        retry_attempts,
        created_at,
        updated_at,
        start_at,
        started_at,
        expires_at,
        finished_at,
        children_count,
        unfinished_children,
        failed_children,
        finalize_id,
        close_state,
        needs_cancellation,
        executor_id,
        lease_token,
    ) = row[: len(COLUMNS)]
    return ExecutionRecord(
        execution_id=execution_id,
        task_id=task_id,
        input=input_,
        status=S(status),
        root_execution_id=root_id,
        parent_execution_id=parent_id,
        index_in_parent=index_in_parent,
        is_finalize=bool(is_finalize),
        priority=priority,
        idempotency_key=idempotency_key,
        output=output,
        run_output=run_output,
        error=error_from_json(error),
        retry_attempts=retry_attempts,
        created_at_ms=created_at,
        updated_at_ms=updated_at,
        start_at_ms=start_at,
        started_at_ms=started_at,
        expires_at_ms=expires_at,
        finished_at_ms=finished_at,
        children_count=children_count,
        unfinished_children=unfinished_children,
        failed_children=failed_children,
        finalize_execution_id=finalize_id,
        close_state=CloseState(close_state),
        needs_promise_cancellation=bool(needs_cancellation),
        executor_id=executor_id,
        lease_token=lease_token,
        child_execution_ids=tuple(child_ids or ()),
    )
