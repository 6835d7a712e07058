"""An executor on a storage alone, for the commands that read or change executions without
the application's code (``cancel``, ``retry``, ``wakeup``, ``purge``): never started, shut
down and its storage closed at the end."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from durable_execution.cli import exit_codes
from durable_execution.cli.common import CommandError, open_storage
from durable_execution.errors import DurableExecutionNotFoundError
from durable_execution.executor.executor import DurableExecutor

__all__ = ["operator_executor"]


@contextlib.asynccontextmanager
async def operator_executor(url: str | None) -> AsyncIterator[DurableExecutor]:
    """A never-started executor on the storage ``url`` names; an execution not found
    becomes exit code 5."""
    storage = open_storage(url)
    executor = DurableExecutor(storage)
    try:
        yield executor
    except DurableExecutionNotFoundError as exc:
        raise CommandError(str(exc), exit_codes.NOT_FOUND) from exc
    finally:
        await executor.shutdown()
        await storage.close()
