"""Handles: how an application follows and controls one execution."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, Generic, Protocol, TypeVar

from durable_execution.execution import DurableTaskExecution

__all__ = ["DurableTaskHandle"]

OutputT_co = TypeVar("OutputT_co", covariant=True)


class _Backend(Protocol):
    async def _read_execution(
        self, execution_id: str, check_workers: bool = False
    ) -> DurableTaskExecution[Any]: ...

    def _wait_and_read(
        self, execution_id: str, timeout: float | None
    ) -> Coroutine[Any, Any, DurableTaskExecution[Any]]: ...

    async def _cancel_execution(self, execution_id: str) -> None: ...


class DurableTaskHandle(Generic[OutputT_co]):
    """A reference to one execution of a task; cheap to create, safe to keep.

    ``DurableTaskHandle[Out]``: its executions carry ``output: Out | None``.

    Obtain it from :meth:`DurableExecutor.enqueue_task` or, later or in another process,
    :meth:`DurableExecutor.get_task_handle`.
    """

    __slots__ = ("_backend", "execution_id", "task_id")

    def __init__(self, backend: _Backend, task_id: str, execution_id: str) -> None:
        self._backend = backend
        self.task_id = task_id
        self.execution_id = execution_id

    async def get_execution(
        self, *, check_workers: bool = False
    ) -> DurableTaskExecution[OutputT_co]:
        """The execution as it is stored now, whatever its status.

        ``check_workers=True`` also says whether it waits for a task that no live executor
        registered (``unserved`` and ``unserved_task_ids`` of the execution), at the cost of
        a few more storage reads; see :meth:`DurableExecutor.get_execution
        <durable_execution.DurableExecutor.get_execution>`.
        """
        return await self._backend._read_execution(self.execution_id, check_workers)

    def wait_and_get_execution(
        self, *, timeout: float | None = None
    ) -> Coroutine[Any, Any, DurableTaskExecution[OutputT_co]]:
        """Wait until the execution is finished, then return it: ``await`` the result.

        ``timeout`` is in seconds (``None``: wait as long as it takes), counted from this
        call; past it, :class:`TimeoutError` is raised and the execution carries on.

        The wait starts at the call. What it returns is a future that is also a coroutine:
        ``await`` it, ``asyncio.gather`` many of them (without a task for each: the fastest
        way to wait for many handles at once), or pass it to ``asyncio.create_task``,
        ``TaskGroup.create_task``, ``asyncio.wait_for``, ``asyncio.shield`` or
        ``asyncio.as_completed``. Call it from the executor's event loop.
        """
        return self._backend._wait_and_read(self.execution_id, timeout)

    async def cancel(self) -> None:
        """Cancel the execution and its unfinished descendants. Idempotent; a finished
        execution is left as it is. A running one is stopped on whichever executor runs it."""
        await self._backend._cancel_execution(self.execution_id)

    def __repr__(self) -> str:
        return f"DurableTaskHandle(task_id={self.task_id!r}, execution_id={self.execution_id!r})"
