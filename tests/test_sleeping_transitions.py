"""The pure rules of sleeping executions (storage/transitions.py) and the executor's helpers
(executor/sleeping.py)."""

from __future__ import annotations

import pytest

from durable_execution.errors import (
    DuplicateUniqueIdError,
    DurableExecutionError,
    DurableExecutionErrorInfo,
    DurableExecutionErrorType,
)
from durable_execution.executor.sleeping import (
    MAX_UNIQUE_ID_LENGTH,
    check_unique_id,
    duplicate_child_outcome,
    wakeup_values,
)
from durable_execution.serialization import JsonSerializer
from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.records import CloseState, ExecutionOutcome, NewExecution
from durable_execution.storage.transitions import (
    apply_sleep_timeout,
    apply_wakeup,
    check_wakeup_status,
    new_record,
    wakeup_applies,
)

T0 = 1_000_000


def sleeping(parent: str | None = None, claimed_by: str | None = None) -> NewExecution:
    return NewExecution(
        execution_id="s",
        task_id="approval",
        input='"u"',
        start_at_ms=T0,
        parent_execution_id=parent,
        root_execution_id=parent,
        unique_id="u",
        sleep_timeout_ms=500,
        claimed_by=claimed_by,
    )


def test_a_sleeping_execution_is_stored_sleeping_with_its_deadline() -> None:
    record = new_record(sleeping(), T0)
    assert record.status is S.SLEEPING
    assert record.unique_id == "u"
    assert record.expires_at_ms == record.timeout_at_ms == T0 + 500
    assert record.executor_id is None
    assert record.lease_token == 0


def test_a_wakeup_finishes_a_root_closed_and_a_child_ready_to_close() -> None:
    root = new_record(sleeping(), T0)
    assert wakeup_applies(root, S.COMPLETED)
    apply_wakeup(root, S.COMPLETED, '"ok"', None, T0 + 1)
    assert (root.status, root.output, root.expires_at_ms) == (S.COMPLETED, '"ok"', None)
    assert root.close_state is CloseState.CLOSED
    assert not wakeup_applies(root, S.FAILED)  # finished: the first one won
    child = new_record(sleeping(parent="p"), T0)
    error = DurableExecutionErrorInfo("no")
    apply_wakeup(child, S.FAILED, '"ignored"', error, T0 + 1)
    assert (child.status, child.output, child.error) == (S.FAILED, None, error)
    assert child.close_state is CloseState.READY


def test_the_timeout_is_a_non_retryable_timed_out_error() -> None:
    record = new_record(sleeping(parent="p"), T0)
    apply_sleep_timeout(record, T0 + 600)
    assert record.status is S.TIMED_OUT
    assert record.finished_at_ms == T0 + 600
    assert record.error is not None
    assert record.error.error_type is DurableExecutionErrorType.TIMED_OUT
    assert not record.error.is_retryable
    assert "approval" in record.error.message
    assert "u" in record.error.message


def test_only_completed_and_failed_wake_up() -> None:
    assert check_wakeup_status(S.COMPLETED) is S.COMPLETED
    with pytest.raises(ValueError, match="completes or fails"):
        check_wakeup_status(S.CANCELLED)


def test_unique_ids_are_non_empty_bounded_strings() -> None:
    assert check_unique_id("x" * MAX_UNIQUE_ID_LENGTH, "here") == "x" * MAX_UNIQUE_ID_LENGTH
    for bad in ("", "x" * (MAX_UNIQUE_ID_LENGTH + 1), 17, None):
        with pytest.raises(ValueError, match="here"):
            check_unique_id(bad, "here")


def test_wakeup_values() -> None:
    serializer = JsonSerializer()
    status, output, error = wakeup_values("completed", {"a": 1}, None, serializer, 100, "t")
    assert (status, error) == (S.COMPLETED, None)
    assert output is not None
    assert serializer.deserialize(output) == {"a": 1}
    status, output, error = wakeup_values(
        "failed", None, DurableExecutionError("rejected", is_retryable=False), serializer, 100, "t"
    )
    assert (status, output) == (S.FAILED, None)
    assert error is not None
    assert (error.message, error.is_retryable) == ("rejected", False)
    with pytest.raises(ValueError, match="not an error"):
        wakeup_values("completed", 1, ValueError("x"), serializer, 100, "t")
    with pytest.raises(ValueError, match="not an output"):
        wakeup_values("failed", 1, ValueError("x"), serializer, 100, "t")
    with pytest.raises(ValueError, match=r"too large|limit"):
        wakeup_values("completed", "x" * 200, None, serializer, 100, "t")


def test_a_duplicate_child_fails_its_parent_without_retry_naming_the_id() -> None:
    outcome = ExecutionOutcome(
        execution_id="p",
        lease_token=3,
        expected_status=S.RUNNING,
        status=S.WAITING_FOR_CHILDREN,
        children=[sleeping(parent="p")],
    )
    failed = duplicate_child_outcome(outcome, DuplicateUniqueIdError("taken"))
    assert (failed.execution_id, failed.lease_token, failed.expected_status) == ("p", 3, S.RUNNING)
    assert failed.status is S.FAILED
    assert failed.children == ()
    assert failed.error is not None
    assert not failed.error.is_retryable
    assert "approval 'u'" in failed.error.message
