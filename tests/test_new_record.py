"""``new_record``: the stored form of an inserted execution, every field checked by name (it
builds the record positionally, for speed)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.records import NewExecution
from durable_execution.storage.transitions import new_record
from durable_execution.testing.harness import assert_new_record

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


# What a claim or a sleep changes of a ready record, with the ready values (for the rest, the
# conformance suite's own spelled-out check of a ready record is reused).
READY_VALUES = {
    "status": S.READY,
    "executor_id": None,
    "lease_token": 0,
    "started_at_ms": None,
    "expires_at_ms": None,
    "timeout_at_ms": None,
    "unique_id": None,
}


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
            {
                "status": S.SLEEPING,
                "expires_at_ms": NOW + 9_000,
                "timeout_at_ms": NOW + 9_000,
                "unique_id": "order-1",
            },
        ),
    ],
    ids=["ready", "claimed", "claimed-lease-capped", "sleeping"],
)
def test_every_field_of_a_new_record(new: NewExecution, changes: dict[str, object]) -> None:
    built = new_record(new, NOW)
    assert {name: getattr(built, name) for name in READY_VALUES} == {**READY_VALUES, **changes}
    assert_new_record(replace(built, **READY_VALUES), new, NOW)
