"""Attributes: set at enqueue and on children, inherited down the tree, read back, limited."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from durable_execution import (
    ChildTask,
    DataTooLargeError,
    DurableExecutor,
    DurableTaskExecutionStatus,
    SerializationError,
    TaskContext,
)
from durable_execution.attributes import (
    MAX_ATTRIBUTES_SIZE,
    decode_attributes,
    encode_attributes,
    merge_attributes,
)

from .helpers import spy_inserts

S = DurableTaskExecutionStatus


def seen_attributes(ctx: TaskContext, input: Any) -> dict[str, Any]:
    return dict(ctx.attributes)


async def test_attributes_are_stored_read_back_and_seen_by_the_run(
    executor: DurableExecutor,
) -> None:
    task = executor.task(id="show", timeout_ms=5000, run=seen_attributes)
    await executor.start()
    attributes = {"tenant": "acme", "trace": {"id": "ab12", "sampled": True}, "n": [1, 2.5]}
    handle = await executor.enqueue_task(task, None, attributes=attributes)
    execution = await handle.wait_and_get_execution(timeout=10)
    assert execution.attributes == attributes
    assert execution.output == attributes
    bare = await executor.enqueue_task(task, None)
    execution = await bare.wait_and_get_execution(timeout=10)
    assert (execution.attributes, execution.output) == ({}, {})


async def test_children_inherit_and_override_key_by_key(executor: DurableExecutor) -> None:
    show = executor.task(id="show", timeout_ms=5000, run=seen_attributes)
    parent = executor.parent_task(
        id="parent",
        timeout_ms=5000,
        run_parent=lambda ctx, i: {
            "output": dict(ctx.attributes),
            "children": [
                ChildTask(show, 0, attributes={"step": "first", "tenant": "other"}),
                {"task": show, "input": 1, "attributes": {"step": "second"}},
                {"task": show, "input": 2},
            ],
        },
        on_run_and_children_complete={
            "id": "parent_done",
            "timeout_ms": 5000,
            "run": lambda ctx, value: {
                "completion": dict(ctx.attributes),
                "children": [c.output for c in value.children_outputs],
            },
        },
    )
    await executor.start()
    handle = await executor.enqueue_task(parent, None, attributes={"tenant": "acme", "x": 1})
    execution = await handle.wait_and_get_execution(timeout=10)
    assert execution.status is S.COMPLETED, execution.error
    assert execution.output == {
        "completion": {"tenant": "acme", "x": 1},
        "children": [
            {"tenant": "other", "x": 1, "step": "first"},
            {"tenant": "acme", "x": 1, "step": "second"},
            {"tenant": "acme", "x": 1},
        ],
    }
    children = [await executor.get_execution(c) for c in execution.child_execution_ids]
    assert [c.attributes.get("step") for c in children] == ["first", "second", None]


async def test_steps_of_a_sequence_carry_its_attributes(executor: DurableExecutor) -> None:
    first = executor.task(id="first", timeout_ms=5000, run=lambda ctx, i: [dict(ctx.attributes)])
    second = executor.task(
        id="second", timeout_ms=5000, run=lambda ctx, i: [*i, dict(ctx.attributes)]
    )
    sequence = executor.sequential_tasks(first, second, id="both")
    await executor.start()
    handle = await executor.enqueue_task(sequence, None, attributes={"run": 7})
    execution = await handle.wait_and_get_execution(timeout=10)
    assert execution.output == [{"run": 7}, {"run": 7}]


async def test_enqueue_tasks_shares_attributes_under_each_items_own(
    executor: DurableExecutor,
) -> None:
    show = executor.task(id="show", timeout_ms=5000, run=seen_attributes)
    await executor.start()
    handles = await executor.enqueue_tasks(
        [(show, 0), ChildTask(show, 1, attributes={"item": 1, "batch": "mine"})],
        attributes={"batch": "b7"},
    )
    results = await executor.wait_and_get_executions(handles, timeout=10)
    assert [r.output for r in results] == [{"batch": "b7"}, {"batch": "mine", "item": 1}]


@pytest.mark.parametrize(
    ("attributes", "error", "message"),
    [
        ({1: "x"}, SerializationError, "key that is not a str: 1"),
        ({"tags": {"a", "b"}}, SerializationError, "Attribute tags is a set"),
        ({"nested": {"when": float("nan")}}, SerializationError, "Attribute nested.when is nan"),
        (["not", "a", "mapping"], SerializationError, "must be a mapping"),
        ({"big": "x" * MAX_ATTRIBUTES_SIZE}, DataTooLargeError, "the limit is 16384 bytes"),
    ],
)
async def test_bad_attributes_are_refused_at_enqueue_and_nothing_is_stored(
    executor: DurableExecutor, attributes: Any, error: type[Exception], message: str
) -> None:
    task = executor.task(id="t", timeout_ms=5000, run=seen_attributes)
    stored = spy_inserts(executor.storage)
    with pytest.raises(error, match=message):
        await executor.enqueue_task(task, None, attributes=attributes)
    assert stored == []


async def test_a_child_with_bad_attributes_fails_its_parent(executor: DurableExecutor) -> None:
    show = executor.task(id="show", timeout_ms=5000, run=seen_attributes)
    parent = executor.parent_task(
        id="parent",
        timeout_ms=5000,
        run_parent=lambda ctx, i: {"output": None, "children": [ChildTask(show, 0, {"s": {1}})]},
    )
    await executor.start()
    execution = await (await executor.enqueue_task(parent, None)).wait_and_get_execution(timeout=10)
    assert execution.status is S.FAILED
    assert execution.error is not None
    assert execution.error.message.startswith(
        "Attributes of child 0 (show) of task parent: Attribute s is a set"
    )
    assert execution.error.is_retryable is False


def test_encoding_is_compact_and_empty_means_none() -> None:
    assert encode_attributes(None) is None
    assert encode_attributes({}) is None
    assert encode_attributes({"a": 1, "é": [True, None]}) == '{"a":1,"é":[true,null]}'
    assert decode_attributes(None) == {}
    assert decode_attributes('{"a":1}') == {"a": 1}
    with pytest.raises(SerializationError, match="not a JSON object"):
        decode_attributes("[1]")


def test_the_size_limit_counts_utf8_bytes() -> None:
    room = MAX_ATTRIBUTES_SIZE - len('{"k":""}')
    assert encode_attributes({"k": "x" * room}) is not None
    with pytest.raises(DataTooLargeError):
        encode_attributes({"k": "é" * (room // 2 + 1)})


@pytest.mark.parametrize(
    ("inherited", "own", "merged"),
    [
        (None, None, None),
        ({"a": 1}, None, {"a": 1}),
        (None, {"b": 2}, {"b": 2}),
        ({"a": 1, "b": 1}, {"b": 2, "c": 3}, {"a": 1, "b": 2, "c": 3}),
    ],
)
def test_merge_overrides_key_by_key(
    inherited: Mapping[str, Any] | None, own: Mapping[str, Any] | None, merged: Any
) -> None:
    text = merge_attributes(encode_attributes(inherited), encode_attributes(own))
    assert (None if text is None else decode_attributes(text)) == merged
    if own is None:  # nothing added: the parent's text is reused as it is
        assert text == encode_attributes(inherited)
