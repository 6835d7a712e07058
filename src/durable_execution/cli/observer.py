"""What the reading commands (``ls``, ``show``, ``stats``) read through: an executor on the
storage alone, never started and knowing no task, so that they need no application code.

Inputs and outputs are read as JSON when they are JSON (the default serializer's form), and
as their stored text otherwise (an application's own serializer): reading never fails on
them.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from durable_execution.cli.common import fail, open_storage
from durable_execution.executor.executor import DurableExecutor
from durable_execution.storage.abilities import ExecutionQueries

__all__ = ["observer"]


class _TextOrJson:
    """A serializer for reading only: JSON text as its value, any other text as itself."""

    def serialize(self, value: Any) -> str:
        return json.dumps(value)

    def deserialize(self, data: str) -> Any:
        try:
            return json.loads(data)
        except ValueError:
            return data


def _check_file(storage: object) -> None:
    """Refuse a SQLite file that does not exist (a mistyped path), rather than create it."""
    path = getattr(storage, "path", None)  # SQLiteStorage's file
    if isinstance(path, str) and path != ":memory:" and not os.path.exists(path):
        fail(f"No SQLite file {path} (a reading command creates none)")


@asynccontextmanager
async def observer(url: str | None) -> AsyncIterator[DurableExecutor]:
    """An executor on the storage ``url`` names (see ``open_storage``), closed on exit."""
    storage = open_storage(url)
    try:
        _check_file(storage)
        if not isinstance(storage, ExecutionQueries):
            fail(f"{storage!r} cannot list executions (it lacks the ExecutionQueries ability)")
        yield DurableExecutor(storage, serializer=_TextOrJson())
    finally:
        await storage.close()
