"""Validation at enqueue (``validate_on_enqueue``): an invalid input raises
``InputValidationError`` and nothing is stored; by default the execution fails instead.

Every test runs on every backend. A spy on ``insert_executions`` proves that nothing reached
the storage; the stored input of a valid one is the input as given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pydantic
import pytest

from durable_execution import (
    ChildTask,
    DurableError,
    DurableExecutor,
    DurableTaskExecutionStatus,
    InputValidationError,
)
from durable_execution.middleware import BaseMiddleware, EnqueueNext, EnqueueRequest
from durable_execution.storage.records import NewExecution

from .helpers import spy_inserts

S = DurableTaskExecutionStatus


class Name(pydantic.BaseModel):
    name: str


def task_ids(batches: list[list[NewExecution]]) -> list[list[str]]:
    """The task ids of each batch :func:`~tests.helpers.spy_inserts` saw."""
    return [[e.task_id for e in batch] for batch in batches]


async def test_invalid_input_raises_and_stores_nothing(executor: DurableExecutor) -> None:
    runs: list[Any] = []
    greet = executor.input_schema(Name, validate_on_enqueue=True).task(
        id="greet", timeout_ms=1000, run=lambda ctx, input: runs.append(input)
    )
    await executor.start()
    inserts = spy_inserts(executor.storage)
    with pytest.raises(InputValidationError) as info:
        await executor.enqueue_task(greet, {"nom": "ada"})
    error = info.value
    assert isinstance(error, DurableError)
    assert isinstance(error, ValueError)
    assert error.task_id == "greet"
    assert str(error).startswith("Invalid input to task greet:")
    assert isinstance(error.__cause__, pydantic.ValidationError)
    assert task_ids(inserts) == []
    assert runs == []


async def test_valid_input_is_stored_as_given_and_validated_again_by_the_run(
    executor: DurableExecutor,
) -> None:
    calls: list[Any] = []

    def check(raw: Any) -> Any:
        calls.append(raw)
        if not isinstance(raw, dict) or "name" not in raw:
            raise ValueError("a name is needed")
        return {"name": raw["name"].upper()}

    shout = executor.validate_input(check, validate_on_enqueue=True).task(
        id="shout", timeout_ms=1000, run=lambda ctx, input: input["name"]
    )
    await executor.start()
    inserts = spy_inserts(executor.storage)
    handle = await executor.enqueue_task(shout, {"name": "ada", "extra": 1})
    execution = await handle.wait_and_get_execution(timeout=20)
    assert (execution.status, execution.output) == (S.COMPLETED, "ADA")
    assert execution.input == {"name": "ada", "extra": 1}
    assert task_ids(inserts) == [["shout"]]
    assert calls == [{"name": "ada", "extra": 1}] * 2  # at enqueue, then at run


async def test_async_validator_is_awaited_at_enqueue(executor: DurableExecutor) -> None:
    async def positive(raw: int) -> int:
        if raw <= 0:
            raise ValueError(f"{raw} is not positive")
        return raw

    task = executor.validate_input(positive, validate_on_enqueue=True).task(
        id="t", timeout_ms=1000, run=lambda ctx, i: i
    )
    await executor.start()
    with pytest.raises(InputValidationError, match=r"^Invalid input to task t: -1 is not") as info:
        await executor.enqueue_task(task, -1)
    assert isinstance(info.value.__cause__, ValueError)


async def test_one_invalid_input_stores_nothing_of_the_batch(executor: DurableExecutor) -> None:
    runs: list[Any] = []
    checked = executor.input_schema(Name, validate_on_enqueue=True).task(
        id="checked", timeout_ms=1000, run=lambda ctx, input: runs.append(input)
    )
    plain = executor.task(id="plain", timeout_ms=1000, run=lambda ctx, i: runs.append(i))
    await executor.start()
    inserts = spy_inserts(executor.storage)
    with pytest.raises(InputValidationError) as info:
        await executor.enqueue_tasks(
            [(plain, 1), ChildTask(checked, {"name": "ada"}), (checked, {"name": 5})]
        )
    assert info.value.task_id == "checked"
    assert task_ids(inserts) == []
    handles = await executor.enqueue_tasks([(plain, 2), (checked, {"name": "ada"})])
    executions = await executor.wait_and_get_executions(handles, timeout=20)
    assert [e.status for e in executions] == [S.COMPLETED, S.COMPLETED]
    assert task_ids(inserts) == [["plain", "checked"]]
    assert sorted(map(repr, runs)) == sorted(map(repr, [2, Name(name="ada")]))


class SeesEnqueues(BaseMiddleware):
    def __init__(self) -> None:
        self.seen: list[tuple[list[Any], str]] = []

    async def enqueue(self, requests: Sequence[EnqueueRequest], call_next: EnqueueNext) -> Any:
        inputs = [request.input for request in requests]
        try:
            handles = await call_next(requests)
        except Exception as exc:
            self.seen.append((inputs, type(exc).__name__))
            raise
        self.seen.append((inputs, "stored"))
        return handles


async def test_middleware_sees_the_refusal_as_the_enqueues_outcome(
    make_executor: Callable[..., DurableExecutor],
) -> None:
    """The validation runs inside the middleware's enqueue hook, on the requests it passes on
    (a middleware may replace them), and before anything is stored."""
    middleware = SeesEnqueues()
    executor = make_executor(middleware=[middleware], validate_on_enqueue=True)
    greet = executor.input_schema(Name).task(id="greet", timeout_ms=1000, run=lambda c, i: i.name)
    await executor.start()
    inserts = spy_inserts(executor.storage)
    with pytest.raises(InputValidationError):
        await executor.enqueue_task(greet, {"nom": "ada"})
    handle = await executor.enqueue_task(greet, {"name": "ada"})
    assert (await handle.wait_and_get_execution(timeout=20)).output == "ada"
    assert middleware.seen == [
        ([{"nom": "ada"}], "InputValidationError"),
        ([{"name": "ada"}], "stored"),
    ]
    assert task_ids(inserts) == [["greet"]]


async def test_by_default_the_execution_fails_instead(executor: DurableExecutor) -> None:
    greet = executor.input_schema(Name).task(id="greet", timeout_ms=1000, run=lambda c, i: i)
    await executor.start()
    handle = await executor.enqueue_task(greet, {"nom": "ada"})
    execution = await handle.wait_and_get_execution(timeout=20)
    assert execution.status is S.FAILED
    assert execution.error.message.startswith("Invalid input to task greet:")


Define = Callable[[DurableExecutor, bool | None], Any]

DEFINITIONS: dict[str, Define] = {
    "input_schema.task": lambda ex, flag: ex.input_schema(Name, validate_on_enqueue=flag).task(
        id="t", timeout_ms=1000, run=lambda ctx, i: i.name
    ),
    "input_schema.parent_task": lambda ex, flag: ex.input_schema(
        Name, validate_on_enqueue=flag
    ).parent_task(id="t", timeout_ms=1000, run_parent=lambda ctx, i: {"output": i.name}),
    "input_schema.sequential_tasks": lambda ex, flag: ex.input_schema(
        Name, validate_on_enqueue=flag
    ).sequential_tasks(ex.task(id="step", timeout_ms=1000, run=lambda c, i: i["name"]), id="t"),
    "parent_schema_task": lambda ex, flag: ex.parent_schema_task(
        id="t",
        input_schema=Name,
        timeout_ms=1000,
        validate_on_enqueue=flag,
        run_parent=lambda ctx, i: {"output": i.name},
    ),
}


@pytest.mark.parametrize(
    ("executor_wide", "task_level", "refused"),
    [
        (False, None, False),
        (True, None, True),
        (False, True, True),
        (True, False, False),
        (True, True, True),
        (False, False, False),
    ],
)
@pytest.mark.parametrize("form", list(DEFINITIONS))
async def test_the_task_level_flag_wins_over_the_executor_wide_option(
    make_executor: Callable[..., DurableExecutor],
    form: str,
    executor_wide: bool,
    task_level: bool | None,
    refused: bool,
) -> None:
    executor = make_executor(validate_on_enqueue=executor_wide)
    assert executor.options.validate_on_enqueue is executor_wide
    task = DEFINITIONS[form](executor, task_level)
    await executor.start()
    inserts = spy_inserts(executor.storage)
    if refused:
        with pytest.raises(InputValidationError, match=r"^Invalid input to task t: "):
            await executor.enqueue_task(task, {"nom": "ada"})
        assert task_ids(inserts) == []
    else:
        handle = await executor.enqueue_task(task, {"nom": "ada"})
        execution = await handle.wait_and_get_execution(timeout=20)
        assert execution.status is S.FAILED
        assert execution.error.message.startswith("Invalid input to task t: ")
        assert task_ids(inserts) == [["t"]]


async def test_tasks_without_validation_are_not_affected(
    make_executor: Callable[..., DurableExecutor],
) -> None:
    executor = make_executor(validate_on_enqueue=True)
    echo = executor.task(id="echo", timeout_ms=1000, run=lambda ctx, i: i)
    await executor.start()
    handle = await executor.enqueue_task(echo, {"anything": object.__name__})
    execution = await handle.wait_and_get_execution(timeout=20)
    assert execution.output == {"anything": "object"}


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_the_executor_option_must_be_a_bool(value: Any) -> None:
    with pytest.raises(ValueError, match="Invalid option validate_on_enqueue="):
        DurableExecutor(validate_on_enqueue=value)


@pytest.mark.parametrize("value", ["yes", 1])
def test_the_builders_flag_must_be_a_bool_or_none(value: Any) -> None:
    from durable_execution.storage.memory import InMemoryStorage

    executor = DurableExecutor(InMemoryStorage())
    with pytest.raises(ValueError, match="Invalid option validate_on_enqueue="):
        executor.input_schema(Name, validate_on_enqueue=value)
    with pytest.raises(ValueError, match="Invalid option validate_on_enqueue="):
        executor.validate_input(lambda raw: raw, validate_on_enqueue=value)
