"""Decoding the SQL backends' rows into records."""

from __future__ import annotations

from dataclasses import fields

import pytest

from durable_execution.errors import DurableExecutionErrorInfo
from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.records import CloseState, ExecutionRecord
from durable_execution.storage.rows import COLUMNS, FIELD_OF_COLUMN, record_from_row

ERROR = DurableExecutionErrorInfo("boom", is_retryable=False)


def a_row(**values: object) -> list[object]:
    row: dict[str, object] = {name: None for name in COLUMNS}
    row.update(
        execution_id="te_1",
        task_id="t",
        input="null",
        status="running",
        index_in_parent=2,
        is_finalize=1,
        priority=-3,
        retry_attempts=1,
        created_at=10,
        updated_at=11,
        start_at=12,
        children_count=4,
        unfinished_children=3,
        failed_children=1,
        close_state="open",
        needs_promise_cancellation=0,
        lease_token=7,
    )
    row.update(values)
    return [row[name] for name in COLUMNS]


def test_the_columns_are_in_the_order_of_the_record_fields() -> None:
    names = [field.name for field in fields(ExecutionRecord)][: len(COLUMNS)]
    assert [name.removesuffix("_ms") for name in names] == [
        FIELD_OF_COLUMN.get(column, column) for column in COLUMNS
    ]


def test_a_row_decodes_every_column() -> None:
    record = record_from_row(
        a_row(error=ERROR.to_json(), expires_at=99, executor_id="dx_1"), ["c1", "c2"]
    )
    assert record.status is S.RUNNING
    assert record.close_state is CloseState.OPEN
    assert record.is_completion is True
    assert record.stop_requested is False
    assert record.error == ERROR
    assert (record.index_in_parent, record.priority, record.retry_attempts) == (2, -3, 1)
    assert (record.created_at_ms, record.updated_at_ms, record.start_at_ms) == (10, 11, 12)
    assert (record.expires_at_ms, record.executor_id, record.lease_token) == (99, "dx_1", 7)
    assert (record.children_count, record.unfinished_children, record.failed_children) == (4, 3, 1)
    assert record.child_execution_ids == ("c1", "c2")
    assert record_from_row(a_row()).child_execution_ids == ()


def test_extra_columns_after_the_record_are_ignored() -> None:
    assert record_from_row([*a_row(), "extra"]).execution_id == "te_1"


@pytest.mark.parametrize("column", ["status", "close_state"])
def test_an_unknown_state_is_an_error(column: str) -> None:
    with pytest.raises(ValueError, match="bogus"):
        record_from_row(a_row(**{column: "bogus"}))
