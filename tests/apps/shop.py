"""A small application for the command-line tests: ``tests.apps.shop:executor``.

Its storage is the default one (``$DURABLE_EXECUTION_STORAGE_URL``), as an application's
would be; the tests also pass ``--storage``.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from durable_execution import ChildTask, DurableExecutor, TaskContext

executor = DurableExecutor(background_process_interval_ms=50, expire_leeway_ms=500)

not_an_executor = "just a string"


@executor.task(id="add", timeout_ms=5_000)
def add(ctx: TaskContext, input: dict[str, int]) -> int:
    return input["a"] + input["b"]


@executor.task(id="fail", timeout_ms=5_000)
def fail(ctx: TaskContext, input: Any) -> None:
    raise ValueError(f"failing on purpose with {input!r}")


@executor.task(id="pid", timeout_ms=5_000)
def pid(ctx: TaskContext, input: None) -> int:
    """Which process ran it."""
    return os.getpid()


@executor.task(id="until_shutdown", timeout_ms=60_000)
async def until_shutdown(ctx: TaskContext, input: str) -> str:
    """Signals it started (a file appears), then runs until its worker shuts down."""
    with open(input, "w", encoding="utf-8") as file:
        file.write(str(os.getpid()))
    while not ctx.is_shutting_down():
        await asyncio.sleep(0.01)
    return "stopped gracefully"


@executor.task(id="forever", timeout_ms=60_000)
async def forever(ctx: TaskContext, input: str) -> None:
    """Signals it started, then ignores the shutdown: it is stopped and given back."""
    with open(input, "w", encoding="utf-8") as file:
        file.write(str(os.getpid()))
    await asyncio.sleep(3600)


tree = executor.parent_task(
    id="tree",
    timeout_ms=60_000,
    run_parent=lambda ctx, path: {
        "output": None,
        "children": [ChildTask(until_shutdown, path), ChildTask(add, {"a": 1, "b": 2})],
    },
)
