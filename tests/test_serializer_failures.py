"""A custom serializer whose ``deserialize`` raises: reads get a ``SerializationError`` that
names the execution and the field, and the background work carries on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from durable_execution import (
    DurableExecutor,
    DurableTaskExecutionStatus,
    JsonSerializer,
    SerializationError,
)
from durable_execution.storage.rows import COLUMNS, record_from_row

S = DurableTaskExecutionStatus


class UnreadableBoom(JsonSerializer):
    """JSON, except that any text holding ``boom`` cannot be read back."""

    def deserialize(self, data: str) -> Any:
        if "boom" in data:
            raise RuntimeError("this text cannot be read")
        return super().deserialize(data)


async def test_an_unreadable_input_raises_a_serialization_error_naming_it(
    make_executor: Callable[..., DurableExecutor],
) -> None:
    executor = make_executor(serializer=UnreadableBoom())
    task = executor.task(id="echo", timeout_ms=5000, run=lambda ctx, i: i)
    await executor.start()
    handle = await executor.enqueue_task(task, ["boom"])  # stored fine; read back, it fails
    for read in (handle.wait_and_get_execution, handle.get_execution):
        with pytest.raises(SerializationError) as caught:
            await read()
        message = str(caught.value)
        assert f"the input of execution {handle.execution_id}" in message
        assert "RuntimeError: this text cannot be read" in message
        assert isinstance(caught.value.__cause__, RuntimeError)
    with pytest.raises(SerializationError, match=f"execution {handle.execution_id}"):
        await executor.wait_and_get_executions([handle])
    # The run itself could not read its input: it failed, and the executor carries on.
    good = await executor.enqueue_task(task, "fine")
    assert (await good.wait_and_get_execution(timeout=10)).output == "fine"


async def test_an_unreadable_output_is_named_as_the_output(
    make_executor: Callable[..., DurableExecutor],
) -> None:
    executor = make_executor(serializer=UnreadableBoom())
    task = executor.task(id="shout", timeout_ms=5000, run=lambda ctx, i: f"{i}-boom")
    await executor.start()
    handle = await executor.enqueue_task(task, "ka")
    with pytest.raises(SerializationError, match=f"the output of execution {handle.execution_id}"):
        await handle.wait_and_get_execution(timeout=10)


async def test_a_run_whose_input_cannot_be_read_fails_without_retrying(
    make_executor: Callable[..., DurableExecutor],
) -> None:
    serializer = UnreadableBoom()
    executor = make_executor(serializer=serializer)
    runs: list[Any] = []
    task = executor.task(
        id="t", timeout_ms=5000, max_retry_attempts=3, run=lambda ctx, i: runs.append(i)
    )
    await executor.start()
    handle = await executor.enqueue_task(task, "boom")
    await executor.wait_until_finished([handle], timeout=10)
    # The record itself is readable with a serializer that can read it.
    records = await executor.storage.get_executions([handle.execution_id])
    assert records[0].status is S.FAILED
    assert records[0].error is not None
    assert records[0].error.message.startswith("Cannot deserialize the input of task t")
    assert records[0].error.is_retryable is False
    assert records[0].retry_attempts == 0
    assert runs == []


async def test_children_outputs_that_cannot_be_read_fail_the_parent_not_the_executor(
    make_executor: Callable[..., DurableExecutor],
) -> None:
    executor = make_executor(serializer=UnreadableBoom())
    child = executor.task(id="child", timeout_ms=5000, run=lambda ctx, i: "boom")
    parent = executor.parent_task(
        id="parent",
        timeout_ms=5000,
        run_parent=lambda ctx, i: {"output": None, "children": [{"task": child, "input": 1}]},
    )
    await executor.start()
    handle = await executor.enqueue_task(parent, None)
    execution = await handle.wait_and_get_execution(timeout=10)
    assert execution.status is S.FAILED
    assert execution.error is not None
    assert "Cannot combine the children outputs of parent" in execution.error.message
    later = await executor.enqueue_task(parent, None)  # the advance loop still works
    assert (await later.wait_and_get_execution(timeout=10)).status is S.FAILED


def test_a_damaged_stored_error_is_named_with_its_execution() -> None:
    row: list[Any] = [None] * len(COLUMNS)
    values = {
        "execution_id": "te_1",
        "task_id": "t",
        "input": "null",
        "status": "failed",
        "index_in_parent": 0,
        "is_finalize": 0,
        "error": "{not json",
        "close_state": "closed",
        "needs_promise_cancellation": 0,
    }
    for name, value in values.items():
        row[COLUMNS.index(name)] = value
    with pytest.raises(SerializationError, match="Cannot decode the error of execution te_1"):
        record_from_row(row)
