"""The pytest plugin of durable_execution: a fresh, started in-memory executor per test.

Registered through the ``pytest11`` entry point when the package is installed, so nothing needs
to be enabled. Fixtures:

``durable_executor``
    A :class:`~durable_execution.DurableExecutor` on a fresh
    :class:`~durable_execution.storage.memory.InMemoryStorage`, started, and shut down after
    the test. Define the test's tasks on it, then run them with
    :func:`~durable_execution.testing.run_task`.

``durable_executor_options``
    The keyword options of that executor (short intervals for fast tests); override this
    fixture to change them.

The fixture is async: it needs pytest-asyncio, with ``asyncio_mode = "auto"`` or tests marked
``@pytest.mark.asyncio`` (it is declared with ``pytest_asyncio.fixture``, so the strict mode
works too). For an application's own module-level executor, see
:func:`~durable_execution.testing.in_memory`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

from durable_execution.executor import DurableExecutor
from durable_execution.storage.memory import InMemoryStorage

if TYPE_CHECKING:
    from pytest_asyncio import fixture as async_fixture
else:
    try:
        from pytest_asyncio import fixture as async_fixture
    except ImportError:  # pragma: no cover - left to another plugin that runs async fixtures
        async_fixture = pytest.fixture

__all__ = ["durable_executor", "durable_executor_options"]


@pytest.fixture
def durable_executor_options() -> dict[str, Any]:
    """Options of the ``durable_executor`` fixture's executor: override to change them."""
    return {"background_process_interval_ms": 20, "shutdown_timeout_ms": 2_000}


@async_fixture
async def durable_executor(
    durable_executor_options: dict[str, Any],
) -> AsyncIterator[DurableExecutor]:
    """A fresh :class:`~durable_execution.DurableExecutor` on an empty in-memory storage,
    started, and shut down after the test."""
    storage = InMemoryStorage()
    executor = DurableExecutor(storage, **durable_executor_options)
    await executor.start()
    try:
        yield executor
    finally:
        await executor.shutdown()
        await storage.close()
