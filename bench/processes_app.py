"""The application ``bench/processes.py`` runs with ``durable-execution worker``:
``processes_app:executor`` (bench/ is on the worker's path)."""

from __future__ import annotations

import os
from typing import Any

from durable_execution import DurableExecutor, TaskContext

executor = DurableExecutor()


@executor.task(id="noop", timeout_ms=60_000)
async def noop(ctx: TaskContext, input: Any) -> int:
    return os.getpid()  # which process ran it (the bench counts each one's share)


def spin(iterations: int) -> int:
    """Pure-Python work, about ``iterations`` loop turns (no I/O, holds the GIL)."""
    total = 0
    for i in range(iterations):
        total = (total + i * i) % 1_000_003
    return total


@executor.task(id="cpu", timeout_ms=60_000)
def cpu(ctx: TaskContext, iterations: int) -> int:
    """The work, then the id of the process that did it (the bench counts each one's share)."""
    spin(iterations)
    return os.getpid()
