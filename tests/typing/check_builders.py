"""Types inferred for the validating builders: ``input_schema``, ``validate_input`` and
``parent_schema_task``.

Checked by mypy (``make typecheck``), never run: nothing here executes at import.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, assert_type

import msgspec
from pydantic import BaseModel, TypeAdapter

from durable_execution import (
    DurableExecutor,
    DurableTask,
    OnRunAndChildrenCompleteInput,
    ParentOutput,
    ParentResult,
    TaskContext,
)
from durable_execution.validated import ValidatedTaskDefiner


class Name(BaseModel):
    name: str


class Point(msgspec.Struct):
    x: int
    y: int


class Checker:
    @classmethod
    def validate(cls, value: object) -> bytes:
        return bytes(str(value), "utf-8")


def parse(raw: dict[str, str]) -> int:
    return len(raw)


async def parse_async(raw: str) -> float:
    return float(raw)


NameInput = Name | Mapping[str, Any]


def builders(ex: DurableExecutor) -> None:
    assert_type(ex.input_schema(Name), ValidatedTaskDefiner[NameInput, Name])
    assert_type(ex.input_schema(Point), ValidatedTaskDefiner[Point | Mapping[str, Any], Point])
    assert_type(ex.input_schema(TypeAdapter(list[int])), ValidatedTaskDefiner[list[int], list[int]])
    assert_type(ex.input_schema(Checker), ValidatedTaskDefiner[Any, bytes])
    assert_type(ex.input_schema(int | None), ValidatedTaskDefiner[Any, Any])
    assert_type(ex.validate_input(parse), ValidatedTaskDefiner[dict[str, str], int])
    assert_type(ex.validate_input(parse_async), ValidatedTaskDefiner[str, float])
    assert_type(
        ex.input_schema(Name, validate_on_enqueue=True), ValidatedTaskDefiner[NameInput, Name]
    )
    assert_type(
        ex.validate_input(parse, validate_on_enqueue=False),
        ValidatedTaskDefiner[dict[str, str], int],
    )


async def hello(ctx: TaskContext, input: Name) -> str:
    return f"Hello, {input.name}!"


def tasks(ex: DurableExecutor) -> None:
    names = ex.input_schema(Name)
    # run gets the model; enqueue takes the model or a mapping (validated at run time).
    assert_type(names.task(id="a", timeout_ms=1, run=hello), DurableTask[NameInput, str])
    assert_type(
        names.task(id="b", timeout_ms=1, run=lambda ctx, input: input.name.upper()),
        DurableTask[NameInput, str],
    )
    assert_type(names.task(id="c", timeout_ms=1, run=lambda ctx: 1), DurableTask[NameInput, int])
    assert_type(names.task(id="d", timeout_ms=1)(hello), DurableTask[NameInput, str])

    @ex.validate_input(parse).task(id="e", timeout_ms=1)
    def e(ctx: TaskContext, input: int) -> list[int]:
        return [input]

    assert_type(e, DurableTask[dict[str, str], list[int]])


def names_parent(ctx: TaskContext, input: Name) -> ParentResult[str]:
    return {"output": input.name}


def combine(ctx: TaskContext, value: OnRunAndChildrenCompleteInput[Name, Any]) -> int:
    return len(value.input.name)


def parents(ex: DurableExecutor) -> None:
    names = ex.input_schema(Name)
    assert_type(
        names.parent_task(id="a", timeout_ms=1, run_parent=names_parent),
        DurableTask[NameInput, ParentOutput[str]],
    )
    # The completion task's value.input is the validated model.
    assert_type(
        names.parent_task(
            id="b",
            timeout_ms=1,
            run_parent=names_parent,
            on_run_and_children_complete={
                "id": "b_done",
                "timeout_ms": 1,
                "run": lambda ctx, value: value.input.name,
            },
        ),
        DurableTask[NameInput, str],
    )
    assert_type(
        names.parent_task(
            id="c",
            timeout_ms=1,
            on_run_and_children_complete={"id": "c_done", "timeout_ms": 1, "run": combine},
        )(names_parent),
        DurableTask[NameInput, int],
    )
    assert_type(
        names.parent_task(id="d", timeout_ms=1)(names_parent),
        DurableTask[NameInput, ParentOutput[str]],
    )
    assert_type(
        names.parent_task(id="e", timeout_ms=1, run_parent=lambda ctx, input: {"output": 1}),
        DurableTask[NameInput, ParentOutput[Any]],
    )


def parent_schema_tasks(ex: DurableExecutor) -> None:
    assert_type(
        ex.parent_schema_task(id="a", input_schema=Name, timeout_ms=1, run_parent=names_parent),
        DurableTask[NameInput, ParentOutput[str]],
    )
    assert_type(
        ex.parent_schema_task(
            id="b",
            input_schema=Name,
            timeout_ms=1,
            run_parent=names_parent,
            on_run_and_children_complete={"id": "b_done", "timeout_ms": 1, "run": combine},
        ),
        DurableTask[NameInput, int],
    )

    @ex.parent_schema_task(id="c", input_schema=Name, timeout_ms=1, validate_on_enqueue=True)
    async def c(ctx: TaskContext, input: Name) -> ParentResult[list[str]]:
        return {"output": [input.name]}

    assert_type(c, DurableTask[NameInput, ParentOutput[list[str]]])
    # Any other schema: untyped (input_schema(schema).parent_task(...) is typed).
    assert_type(
        ex.parent_schema_task(id="d", input_schema=Checker, timeout_ms=1, run_parent=names_parent),
        DurableTask[Any, Any],
    )


def sequences(ex: DurableExecutor) -> None:
    def first(ctx: TaskContext, input: Name) -> str:
        return input.name

    def second(ctx: TaskContext, input: str) -> int:
        return len(input)

    a = ex.task(id="a", timeout_ms=1, run=first)
    b = ex.task(id="b", timeout_ms=1, run=second)
    # The first task gets the validated input.
    assert_type(ex.input_schema(Name).sequential_tasks(a, b), DurableTask[NameInput, int])
