"""Running an application's executor on a fresh in-memory storage: :func:`in_memory`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from durable_execution.executor import DurableExecutor
from durable_execution.storage.memory import InMemoryStorage

__all__ = ["in_memory"]


@contextlib.asynccontextmanager
async def in_memory(executor: DurableExecutor) -> AsyncIterator[DurableExecutor]:
    """Run ``executor`` on a fresh :class:`~durable_execution.storage.memory.InMemoryStorage`
    for the ``async with`` block: started on entry, shut down on exit, and its previous
    storage put back as it was (closed at shutdown only if the executor created it).

    Made for the executor an application defines at import time, with its tasks, so that
    each test gets it empty::

        @pytest.fixture
        async def executor():
            async with in_memory(myapp.tasks.executor) as executor:
                yield executor

    The executor must not be started (``RuntimeError``): use it with a module-level
    executor that only the tests start. After the block it is shut down, so tasks cannot be
    defined on it until its next start; define them at import time, as applications do.
    """
    storage = InMemoryStorage()
    previous, owned = executor._replace_storage(storage, owned=True)
    try:
        await executor.start()
        yield executor
    finally:
        await executor.shutdown()
        executor._replace_storage(previous, owned=owned)
