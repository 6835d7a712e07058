"""Running one task to its end, for tests: :func:`run_task`."""

from __future__ import annotations

from typing import Any, TypeVar, overload

from durable_execution.errors import WaitTimeoutError
from durable_execution.execution import DurableTaskExecution
from durable_execution.executor import DurableExecutor, ExecutorState
from durable_execution.task import DurableTask

__all__ = ["run_task"]

InputT = TypeVar("InputT")
OutputT = TypeVar("OutputT")


@overload
async def run_task(
    executor: DurableExecutor,
    task: DurableTask[None, OutputT],
    input: None = None,
    *,
    timeout: float = 10.0,
) -> DurableTaskExecution[OutputT]: ...


@overload
async def run_task(
    executor: DurableExecutor,
    task: DurableTask[InputT, OutputT],
    input: InputT,
    *,
    timeout: float = 10.0,
) -> DurableTaskExecution[OutputT]: ...


async def run_task(
    executor: DurableExecutor,
    task: DurableTask[Any, OutputT],
    input: Any = None,
    *,
    timeout: float = 10.0,
) -> DurableTaskExecution[OutputT]:
    """Enqueue one execution of ``task``, wait until it is finished and return it.

    Typed as ``enqueue_task``: a ``DurableTask[In, Out]`` takes an ``In`` and gives a
    ``DurableTaskExecution[Out]``.

    The execution is returned whatever its finished status (``completed``, ``failed``, ...):
    assert on ``status``, ``output`` and ``error``. A parent returns once its children and its
    completion task are done too.

    If ``executor`` is not started, it is started for the call and shut down afterwards
    (it can be started again; see :mod:`durable_execution.executor.lifecycle`). A started
    executor stays started.

    ``timeout``: seconds to wait for the execution to finish; past it, the execution is
    cancelled (so that it does not run on behind the test) and
    :class:`~durable_execution.errors.WaitTimeoutError` is raised.
    """
    starts_here = executor.state is not ExecutorState.STARTED
    if starts_here:
        await executor.start()
    try:
        handle = await executor.enqueue_task(task, input)
        try:
            return await handle.wait_and_get_execution(timeout=timeout)
        except WaitTimeoutError:
            await handle.cancel()
            raise
    finally:
        if starts_here:
            await executor.shutdown()
