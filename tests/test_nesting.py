"""Deeply nested values: a clear SerializationError with the limit, on the way in and out,
and the executor keeps running."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from durable_execution import (
    DurableExecutor,
    DurableTaskExecutionStatus,
    SerializationError,
)
from durable_execution.ids import new_execution_id
from durable_execution.serialization import MAX_NESTING_DEPTH, JsonSerializer
from durable_execution.storage.protocol import DurableStorage
from durable_execution.storage.records import NewExecution

from .helpers import wait_until

S = DurableTaskExecutionStatus
TOO_DEEP = re.escape(
    f"nested too deeply (more than {MAX_NESTING_DEPTH} levels of arrays and objects)"
)


def nested_lists(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def nested_dicts(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize("make", [nested_lists, nested_dicts])
def test_values_nested_to_the_limit_round_trip(make: Callable[[int], Any]) -> None:
    serializer = JsonSerializer()
    value = make(MAX_NESTING_DEPTH)
    assert serializer.deserialize(serializer.serialize(value)) == value


@pytest.mark.parametrize("depth", [MAX_NESTING_DEPTH + 1, 900, 100_000])
@pytest.mark.parametrize("make", [nested_lists, nested_dicts])
def test_deeper_values_are_refused_on_both_ways(make: Callable[[int], Any], depth: int) -> None:
    serializer = JsonSerializer()
    with pytest.raises(SerializationError, match=f"^Cannot serialize value: {TOO_DEEP}$"):
        serializer.serialize(make(depth))
    text = "[" * depth + "0" + "]" * depth
    with pytest.raises(SerializationError, match=f"^Cannot deserialize value: {TOO_DEEP}$"):
        serializer.deserialize(text)


@pytest.mark.parametrize(
    ("value", "levels"),
    [
        ((0,), 2),  # {"__de__": "tuple", "v": [0]}
        ({1: 0}, 3),  # {"__de__": "dict", "v": [[1, 0]]}
        ({0}, 2),
        ([float("inf")], 2),
    ],
)
def test_tagged_values_count_the_levels_they_are_stored_with(value: Any, levels: int) -> None:
    serializer = JsonSerializer()
    fits = nested_lists(MAX_NESTING_DEPTH - levels)
    fits_inner: Any = value
    for _ in range(MAX_NESTING_DEPTH - levels):
        fits_inner = [fits_inner]
    assert fits is not None
    text = serializer.serialize(fits_inner)
    assert serializer.deserialize(text) == fits_inner  # what is written can be read
    with pytest.raises(SerializationError, match=TOO_DEEP):
        serializer.serialize([fits_inner])


def test_brackets_inside_strings_do_not_count() -> None:
    serializer = JsonSerializer()
    value = ["[" * 500, "{" * 500, '"]' * 300, "\\[" * 300]
    assert serializer.deserialize(serializer.serialize(value)) == value


async def test_the_executor_stays_up_through_too_deep_inputs_and_outputs(
    make_executor: Callable[..., DurableExecutor], storage: DurableStorage
) -> None:
    executor = make_executor()
    echo = executor.task(id="echo", timeout_ms=5_000, run=lambda ctx, x: x)
    deep_output = executor.task(id="deep", timeout_ms=5_000, run=lambda ctx: nested_lists(900))
    await executor.start()
    with pytest.raises(
        SerializationError, match=f"^Input of task echo is not serializable: .*{TOO_DEEP}"
    ):
        await executor.enqueue_task(echo, nested_lists(900))
    failed = await (await executor.enqueue_task(deep_output)).wait_and_get_execution(timeout=10)
    assert failed.status is S.FAILED
    assert failed.error is not None
    assert re.search(TOO_DEEP, failed.error.message)
    # An input stored too deep by someone else fails its execution when it is read.
    stored_id = new_execution_id()
    text = "[" * 900 + "]" * 900
    await storage.insert_executions([NewExecution(stored_id, "echo", text, start_at_ms=0)], 0)

    async def stored_finished() -> Any:
        (record,) = await storage.get_executions([stored_id])
        return record if record.status.is_finished else None

    record = await wait_until(stored_finished, message="the stored execution to finish")
    assert record.status is S.FAILED
    assert record.error is not None
    assert re.search(
        f"^Cannot deserialize the input of task echo: Cannot deserialize value: {TOO_DEEP}$",
        record.error.message,
    )
    with pytest.raises(SerializationError, match=TOO_DEEP):  # reading it says why, too
        await (await executor.get_task_handle(echo, stored_id)).get_execution()
    fine = await (await executor.enqueue_task(echo, nested_lists(50))).wait_and_get_execution(
        timeout=10
    )
    assert fine.output == nested_lists(50)
