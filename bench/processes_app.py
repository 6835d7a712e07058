"""The application ``bench/processes.py`` runs with ``durable-execution worker``:
``processes_app:executor`` (bench/ is on the worker's path)."""

from __future__ import annotations

import os
import time
from typing import Any

from durable_execution import DurableExecutor, TaskContext

executor = DurableExecutor()


@executor.task(id="noop", timeout_ms=60_000)
async def noop(ctx: TaskContext, input: Any) -> int:
    return os.getpid()  # which process ran it (the bench counts each one's share)


def spin(cpu_ms: float) -> int:
    """Pure-Python work (no I/O, holding the GIL) until this thread has used ``cpu_ms`` of
    CPU: the same work on any machine, and in any run, whatever else shares the cores."""
    end = time.thread_time() + cpu_ms / 1000
    total = 0
    while time.thread_time() < end:
        for i in range(1_000):
            total = (total + i * i) % 1_000_003
    return total


@executor.task(id="cpu", timeout_ms=60_000)
def cpu(ctx: TaskContext, cpu_ms: float) -> int:
    """The work, then the id of the process that did it (the bench counts each one's share)."""
    spin(cpu_ms)
    return os.getpid()
