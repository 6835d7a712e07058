"""``new_record``: the stored form of an inserted execution, every field named (it builds the
record positionally, for speed; this spells each field out by name)."""

from __future__ import annotations

from dataclasses import fields, replace

import pytest

from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.records import CloseState, ExecutionRecord, NewExecution
from durable_execution.storage.transitions import new_record

NOW = 1_700_000_000_000

CHILD = NewExecution(
    execution_id="child",
    task_id="task",
    input='{"x": 1}',
    start_at_ms=NOW + 5,
    root_execution_id="root",
    parent_execution_id="parent",
    index_in_parent=3,
    is_completion=True,
    priority=7,
    idempotency_key="key",
    attributes='{"tenant": "a"}',
)


def expected(new: NewExecution, **changes: object) -> ExecutionRecord:
    record = ExecutionRecord(
        execution_id=new.execution_id,
        task_id=new.task_id,
        input=new.input,
        status=S.READY,
        root_execution_id=new.root_execution_id,
        parent_execution_id=new.parent_execution_id,
        index_in_parent=new.index_in_parent,
        is_completion=new.is_completion,
        priority=new.priority,
        idempotency_key=new.idempotency_key,
        output=None,
        run_output=None,
        error=None,
        retry_attempts=0,
        created_at_ms=NOW,
        updated_at_ms=NOW,
        start_at_ms=new.start_at_ms,
        started_at_ms=None,
        expires_at_ms=None,
        finished_at_ms=None,
        children_count=0,
        unfinished_children=0,
        failed_children=0,
        completion_execution_id=None,
        close_state=CloseState.OPEN,
        stop_requested=False,
        executor_id=None,
        lease_token=0,
        attributes=new.attributes,
        timeout_at_ms=None,
        lease_expiries=0,
        children_policy="fail_fast",
        unique_id=new.unique_id,
        child_execution_ids=(),
    )
    return replace(record, **changes)


@pytest.mark.parametrize(
    ("new", "changes"),
    [
        (CHILD, {}),
        (
            replace(CHILD, claimed_by="me", claim_lease_ms=5_000, claim_timeout_ms=30_000),
            {
                "status": S.RUNNING,
                "executor_id": "me",
                "lease_token": 1,
                "started_at_ms": NOW,
                "expires_at_ms": NOW + 5_000,
                "timeout_at_ms": NOW + 30_000,
            },
        ),
        (
            replace(CHILD, claimed_by="me", claim_lease_ms=60_000, claim_timeout_ms=30_000),
            {  # the lease never past the backstop
                "status": S.RUNNING,
                "executor_id": "me",
                "lease_token": 1,
                "started_at_ms": NOW,
                "expires_at_ms": NOW + 30_000,
                "timeout_at_ms": NOW + 30_000,
            },
        ),
        (
            replace(CHILD, unique_id="order-1", sleep_timeout_ms=9_000),
            {"status": S.SLEEPING, "expires_at_ms": NOW + 9_000, "timeout_at_ms": NOW + 9_000},
        ),
    ],
    ids=["ready", "claimed", "claimed-lease-capped", "sleeping"],
)
def test_every_field_of_a_new_record(new: NewExecution, changes: dict[str, object]) -> None:
    built, wanted = new_record(new, NOW), expected(new, **changes)
    assert {f.name: getattr(built, f.name) for f in fields(built)} == {
        f.name: getattr(wanted, f.name) for f in fields(wanted)
    }
