"""The completion task's ``value.input``: the parent's input, validated as the parent's was.

With ``input_schema`` / ``validate_input`` on the parent, the completion task sees the parsed
value (a pydantic model, what the function returned), on every backend; the stored input stays
the raw one. Whether the parent had children or not, the completion is created by a different
path (the parent's own outcome, or the advance past its children): both are covered.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from durable_execution import (
    ChildTask,
    DurableExecutor,
    DurableTaskExecutionStatus,
    OnRunAndChildrenCompleteInput,
    TaskContext,
)

S = DurableTaskExecutionStatus


class Upload(BaseModel):
    file_path: str
    size: int = 0


async def finish(executor: DurableExecutor, task: Any, input: Any = None) -> Any:
    handle = await executor.enqueue_task(task, input)
    return await handle.wait_and_get_execution(timeout=20)


def describe(ctx: TaskContext, value: OnRunAndChildrenCompleteInput[Any, Any]) -> dict[str, Any]:
    return {
        "input_type": type(value.input).__name__,
        "input": value.input.model_dump() if isinstance(value.input, BaseModel) else value.input,
        "output": value.output,
        "children": [child.output for child in value.children_outputs],
    }


@pytest.mark.parametrize("with_children", [False, True], ids=["no_children", "children"])
async def test_input_schema_parent_gives_its_completion_the_model(
    executor: DurableExecutor, with_children: bool
) -> None:
    double = executor.task(id="double", timeout_ms=1000, run=lambda ctx, i: i * 2)

    def run_parent(ctx: TaskContext, input: Upload) -> dict[str, Any]:
        children = [ChildTask(double, input.size)] if with_children else []
        return {"output": input.file_path, "children": children}

    parent = executor.input_schema(Upload).parent_task(
        id="upload",
        timeout_ms=1000,
        run_parent=run_parent,
        on_run_and_children_complete={"id": "upload_done", "timeout_ms": 1000, "run": describe},
    )
    await executor.start()
    raw = {"file_path": "a.txt", "size": "21"}  # coerced to an int by the model
    execution = await finish(executor, parent, raw)
    assert execution.status is S.COMPLETED, execution.error
    assert execution.output == {
        "input_type": "Upload",
        "input": {"file_path": "a.txt", "size": 21},
        "output": "a.txt",
        "children": [42] if with_children else [],
    }
    assert execution.input == raw  # stored as given


async def test_validate_input_parent_gives_its_completion_the_functions_value(
    executor: DurableExecutor,
) -> None:
    async def normalize(raw: dict[str, str]) -> dict[str, str]:
        return {"name": raw["name"].strip().title()}

    leaf = executor.task(id="leaf", timeout_ms=1000, run=lambda ctx, i: len(i["name"]))
    parent = executor.validate_input(normalize).parent_task(
        id="greet",
        timeout_ms=1000,
        run_parent=lambda ctx, i: {"output": i["name"], "children": [ChildTask(leaf, i)]},
        on_run_and_children_complete={"id": "greet_done", "timeout_ms": 1000, "run": describe},
    )
    await executor.start()
    execution = await finish(executor, parent, {"name": "  ada lovelace "})
    assert execution.status is S.COMPLETED, execution.error
    assert execution.output == {
        "input_type": "dict",
        "input": {"name": "Ada Lovelace"},
        "output": "Ada Lovelace",
        "children": [12],
    }


async def test_parent_schema_task_gives_its_completion_the_model(
    executor: DurableExecutor,
) -> None:
    parent = executor.parent_schema_task(
        id="upload",
        input_schema=Upload,
        timeout_ms=1000,
        run_parent=lambda ctx, i: {"output": i.size},
        on_run_and_children_complete={
            "id": "upload_done",
            "timeout_ms": 1000,
            "run": lambda ctx, v: [type(v.input).__name__, v.input.file_path, v.output],
        },
    )
    await executor.start()
    execution = await finish(executor, parent, {"file_path": "b.txt", "size": 3})
    assert execution.status is S.COMPLETED, execution.error
    assert execution.output == ["Upload", "b.txt", 3]


async def test_a_parent_without_validation_gives_the_stored_input(
    executor: DurableExecutor,
) -> None:
    parent = executor.parent_task(
        id="plain",
        timeout_ms=1000,
        run_parent=lambda ctx, i: {"output": None},
        on_run_and_children_complete={"id": "plain_done", "timeout_ms": 1000, "run": describe},
    )
    await executor.start()
    execution = await finish(executor, parent, {"file_path": "c.txt"})
    assert execution.output["input_type"] == "dict"
    assert execution.output["input"] == {"file_path": "c.txt"}


@pytest.mark.parametrize("with_children", [False, True], ids=["no_children", "children"])
async def test_an_input_refused_for_the_completion_fails_it_at_once(
    executor: DurableExecutor, with_children: bool
) -> None:
    """The parent's validator accepts the input for the parent's run and refuses it when the
    completion task runs (a validator that changed, say): the completion fails like any
    invalid input, without a retry and without calling its run function."""
    calls: list[str] = []
    completion_runs: list[Any] = []

    def once(raw: Any) -> Any:
        calls.append("validate")
        if len(calls) > 1:
            raise ValueError("no longer accepted")
        return raw

    leaf = executor.task(id="leaf", timeout_ms=1000, run=lambda ctx, i: i)
    parent = executor.validate_input(once).parent_task(
        id="p",
        timeout_ms=1000,
        run_parent=lambda ctx, i: {
            "output": i,
            "children": [ChildTask(leaf, 1)] if with_children else [],
        },
        on_run_and_children_complete={
            "id": "p_done",
            "timeout_ms": 1000,
            "max_retry_attempts": 3,
            "run": lambda ctx, v: completion_runs.append(v),
        },
    )
    await executor.start()
    execution = await finish(executor, parent, 5)
    assert execution.status is S.ON_RUN_AND_CHILDREN_COMPLETE_FAILED
    completion = await executor.get_execution(execution.completion_execution_id)
    assert completion.status is S.FAILED
    assert completion.retry_attempts == 0
    assert completion.error.is_retryable is False
    assert completion.error.message == "Invalid input to task p_done: no longer accepted"
    assert completion_runs == []
    assert calls == ["validate", "validate"]


def test_the_completion_keeps_the_parents_validator_apart_from_its_own() -> None:
    from durable_execution.storage.memory import InMemoryStorage

    ex = DurableExecutor(InMemoryStorage())
    parent = ex.input_schema(Upload).parent_task(
        id="p",
        timeout_ms=10,
        run_parent=lambda ctx, i: {"output": None},
        on_run_and_children_complete={
            "id": "p_done",
            "timeout_ms": 10,
            "run_parent": lambda ctx, v: {"output": None},
            "on_run_and_children_complete": {
                "id": "p_done_done",
                "timeout_ms": 10,
                "run": describe,
            },
        },
    )
    completion = parent.completion
    assert completion is not None
    assert completion.validator is None  # its own input, the value, is not validated
    assert completion.parent_input_validator is parent.validator
    # The nested one's parent is the completion task, which has no validator.
    assert completion.completion is not None
    assert completion.completion.parent_input_validator is None
    plain = ex.parent_task(
        id="q",
        timeout_ms=10,
        run_parent=lambda ctx, i: {"output": None},
        on_run_and_children_complete={"id": "q_done", "timeout_ms": 10, "run": describe},
    )
    assert plain.completion is not None
    assert plain.completion.parent_input_validator is None
