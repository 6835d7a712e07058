"""``DurableTaskExecution.from_record``: every field of the public view, from a stored record.

``from_record`` fills the frozen dataclass's slots itself (it is on the path of every read);
these tests compare what it builds with what the dataclass's own ``__init__`` builds."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest

from durable_execution import DurableExecutionErrorInfo, DurableTaskExecution, JsonSerializer
from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.records import CloseState, ExecutionRecord

T0 = 1_700_000_000_123


def utc(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def record(**fields: Any) -> ExecutionRecord:
    values: dict[str, Any] = {
        "execution_id": "de_1",
        "task_id": "task",
        "input": '{"x":[1,2]}',
        "status": S.COMPLETED,
        "root_execution_id": "de_root",
        "parent_execution_id": "de_parent",
        "index_in_parent": 3,
        "is_completion": True,
        "priority": 7,
        "idempotency_key": "key",
        "output": '{"answer":42}',
        "run_output": None,
        "error": DurableExecutionErrorInfo("earlier attempt", is_retryable=True),
        "retry_attempts": 2,
        "created_at_ms": T0,
        "updated_at_ms": T0 + 5,
        "start_at_ms": T0 + 1,
        "started_at_ms": T0 + 2,
        "expires_at_ms": T0 + 3,
        "finished_at_ms": T0 + 4,
        "children_count": 0,
        "unfinished_children": 0,
        "failed_children": 0,
        "completion_execution_id": "de_completion",
        "close_state": CloseState.CLOSED,
        "stop_requested": False,
        "executor_id": None,
        "lease_token": 4,
        "attributes": '{"tenant":"a"}',
        "timeout_at_ms": None,
        "lease_expiries": 1,
        "child_execution_ids": ("de_c1", "de_c2"),
    }
    values.update(fields)
    return ExecutionRecord(**values)


def expected(r: ExecutionRecord, output: Any) -> DurableTaskExecution[Any]:
    """The view built the plain way, field by field."""

    def optional(ms: int | None) -> dt.datetime | None:
        return None if ms is None else utc(ms)

    return DurableTaskExecution(
        task_id=r.task_id,
        execution_id=r.execution_id,
        status=r.status,
        input={"x": [1, 2]},
        output=output,
        error=r.error,
        retry_attempts=r.retry_attempts,
        is_closed=r.is_closed,
        parent_execution_id=r.parent_execution_id,
        root_execution_id=r.root_execution_id,
        child_execution_ids=r.child_execution_ids,
        completion_execution_id=r.completion_execution_id,
        is_completion=r.is_completion,
        priority=r.priority,
        idempotency_key=r.idempotency_key,
        attributes={"tenant": "a"} if r.attributes else {},
        created_at=utc(r.created_at_ms),
        updated_at=utc(r.updated_at_ms),
        start_at=utc(r.start_at_ms),
        started_at=optional(r.started_at_ms),
        finished_at=optional(r.finished_at_ms),
        expires_at=optional(r.expires_at_ms),
        lease_expiries=r.lease_expiries,
    )


@pytest.mark.parametrize(
    ("fields", "output"),
    [
        ({}, {"answer": 42}),  # every time differs
        ({"status": S.RUNNING, "close_state": CloseState.OPEN}, None),  # output not yet valid
        (  # times that coincide, and the optional ones unset
            {
                "updated_at_ms": T0,
                "start_at_ms": T0,
                "started_at_ms": None,
                "expires_at_ms": None,
                "finished_at_ms": None,
                "attributes": None,
            },
            {"answer": 42},
        ),
        ({"started_at_ms": T0, "finished_at_ms": T0 + 5, "expires_at_ms": T0 + 5}, {"answer": 42}),
    ],
)
def test_from_record_builds_what_the_dataclass_builds(fields: dict[str, Any], output: Any) -> None:
    r = record(**fields)
    built = DurableTaskExecution.from_record(r, JsonSerializer())
    reference = expected(r, output)
    for field in dataclasses.fields(DurableTaskExecution):
        assert getattr(built, field.name) == getattr(reference, field.name), field.name
    assert built == reference
    assert built.unserved_task_ids is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.status = S.FAILED  # type: ignore[misc]
    assert dataclasses.replace(built, unserved_task_ids=()).unserved is False
