"""Test helpers: poll a condition with a deadline instead of sleeping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from durable_execution.storage.abilities import StampedWrites
from durable_execution.storage.records import NewExecution

T = TypeVar("T")


async def wait_until(
    condition: Callable[[], Awaitable[T]] | Callable[[], T],
    *,
    timeout: float = 10.0,
    interval: float = 0.01,
    message: str = "condition",
) -> T:
    """Poll ``condition`` (plain or async) until it returns a truthy value; fail after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(interval)


def spy_inserts(storage: Any) -> list[list[NewExecution]]:
    """Every batch of executions the executors on ``storage`` insert from now on: it wraps the
    method they call, ``insert_executions_stamped`` on a storage with the ``StampedWrites``
    ability, else ``insert_executions``."""
    batches: list[list[NewExecution]] = []
    name = (
        "insert_executions_stamped" if isinstance(storage, StampedWrites) else "insert_executions"
    )
    insert = getattr(storage, name)

    async def spying(executions: Sequence[NewExecution], now_ms: int, **kw: Any) -> Any:
        batches.append(list(executions))
        return await insert(executions, now_ms, **kw)

    setattr(storage, name, spying)
    return batches
