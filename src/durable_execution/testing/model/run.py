"""Running the model-based tests on a storage: one event loop for a whole Hypothesis run."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from hypothesis import settings as Settings
from hypothesis.stateful import run_state_machine_as_test

from durable_execution.storage.protocol import DurableStorage
from durable_execution.testing.model.machine import StorageModelMachine

__all__ = ["EmptyStorage", "run_storage_model"]

EmptyStorage = Callable[[], Awaitable[DurableStorage]]
"""Returns a storage on an empty store, once per example (it may empty and reuse one)."""


def run_storage_model(
    storages: contextlib.AbstractAsyncContextManager[EmptyStorage],
    settings: Settings | None = None,
) -> None:
    """Run :class:`StorageModelMachine` on the storages ``storages`` gives.

    Everything runs in one event loop (an :class:`asyncio.Runner`), whatever thread
    Hypothesis calls the steps from: ``storages`` is entered once in it and yields a
    function returning a storage on an empty store for each example; it is left at the end,
    and should close what it opened.
    """
    with asyncio.Runner() as runner:
        stack = contextlib.AsyncExitStack()
        empty = runner.run(stack.enter_async_context(storages))
        try:

            class Machine(StorageModelMachine):
                """The machine on a fresh storage for each example, in this loop."""

                def __init__(self) -> None:
                    super().__init__(runner.run(_initialized(empty)), runner)

            run_state_machine_as_test(Machine, settings=settings)
        finally:
            runner.run(stack.aclose())


async def _initialized(empty: EmptyStorage) -> DurableStorage:
    storage = await empty()
    await storage.initialize()
    return storage
