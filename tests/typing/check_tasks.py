"""Types inferred for ``task``: plain or async, with or without input, call or decorator.

Checked by mypy (``make typecheck``), never run: nothing here executes at import.
"""

from __future__ import annotations

from typing import Any, assert_type

from durable_execution import DurableExecutor, DurableTask, RetryPolicy, TaskContext


def plain(ctx: TaskContext, input: int) -> str:
    return str(input)


async def coroutine(ctx: TaskContext, input: int) -> str:
    return str(input)


def plain_no_input(ctx: TaskContext) -> bytes:
    return b""


async def coroutine_no_input(ctx: TaskContext) -> bytes:
    return b""


def call_form(ex: DurableExecutor) -> None:
    assert_type(ex.task(id="a", timeout_ms=1, run=plain), DurableTask[int, str])
    assert_type(ex.task(id="b", timeout_ms=1, run=coroutine), DurableTask[int, str])
    assert_type(ex.task(id="c", timeout_ms=1, run=plain_no_input), DurableTask[None, bytes])
    assert_type(ex.task(id="d", timeout_ms=1, run=coroutine_no_input), DurableTask[None, bytes])
    assert_type(
        ex.task(id="e", timeout_ms=1, max_retry_attempts=2, sleep_ms_before_attempt=5, run=plain),
        DurableTask[int, str],
    )
    policy = RetryPolicy(max_attempts=5, base_delay_ms=100, retry_on=(TimeoutError,))
    assert_type(ex.task(id="f", timeout_ms=1, retry=policy, run=plain), DurableTask[int, str])
    step = ex.task(id="g", timeout_ms=1, run=plain)
    assert_type(ex.sequential_tasks(step, retry=policy), DurableTask[int, str])


def decorator_form(ex: DurableExecutor) -> None:
    @ex.task(id="a", timeout_ms=1)
    def a(ctx: TaskContext, input: dict[str, int]) -> list[int]:
        return list(input.values())

    @ex.task(id="b", timeout_ms=1)
    async def b(ctx: TaskContext, input: dict[str, int]) -> list[int]:
        return list(input.values())

    @ex.task(id="c", timeout_ms=1)
    def c(ctx: TaskContext) -> float:
        return 1.0

    @ex.task(id="d", timeout_ms=1)
    async def d(ctx: TaskContext) -> float:
        return 1.0

    assert_type(a, DurableTask[dict[str, int], list[int]])
    assert_type(b, DurableTask[dict[str, int], list[int]])
    assert_type(c, DurableTask[None, float])
    assert_type(d, DurableTask[None, float])
    assert_type(ex.task(id="e", timeout_ms=1)(coroutine), DurableTask[int, str])


def lambdas(ex: DurableExecutor) -> None:
    # A lambda's parameters have no declared type: its input is Any, its output inferred.
    assert_type(
        ex.task(id="a", timeout_ms=1, run=lambda ctx, input: f"Hello, {input['name']}!"),
        DurableTask[Any, str],
    )
    assert_type(ex.task(id="b", timeout_ms=1, run=lambda ctx: ctx.attempt), DurableTask[None, int])
    assert_type(ex.task(id="c", timeout_ms=1, run=lambda ctx, input: input), DurableTask[Any, Any])


def variance(task: DurableTask[object, bool]) -> None:
    # A task that takes any object takes an int; a task whose output is a bool outputs an int.
    narrower: DurableTask[int, int] = task
    assert_type(narrower, DurableTask[int, int])
