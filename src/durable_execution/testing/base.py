"""The base of the storage conformance suite: how a scenario gets, and gives back, storages."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from durable_execution.storage.protocol import DurableStorage
from durable_execution.testing.harness import Harness

__all__ = ["ConformanceBase", "Scenario"]

Scenario = Callable[[Harness], Awaitable[None]]


class ConformanceBase:
    """What every part of the suite shares; see :class:`StorageConformanceSuite`.

    Each test method is a plain synchronous method that runs one scenario with
    :func:`asyncio.run`, so the suite needs no pytest plugin and no fixture. A subclass is
    collected by pytest unless its own class body sets ``__test__ = False`` (as the suite's
    parts and the suite itself do).
    """

    __test__: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__test__" not in cls.__dict__:
            cls.__test__ = True

    async def create_storage(self) -> DurableStorage:
        """A storage on a fresh, empty store. Subclasses must implement it.

        Called once per test, inside the test's event loop. The suite calls ``initialize``
        on it (again, which must be harmless) before using it.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement create_storage()")

    async def reconnect(self, storage: DurableStorage) -> DurableStorage:
        """Another storage object on the same store as ``storage`` (like another process).

        May be called from another thread, inside that thread's own event loop; the object
        returned is used only there. The default returns ``storage`` itself, which suits
        backends whose objects may be shared across threads and event loops.
        """
        return storage

    async def dispose(self, storage: DurableStorage) -> None:
        """Give back a storage object at the end of a test (each object once, the one from
        :meth:`create_storage` last). The default closes it."""
        await storage.close()

    def run_scenario(self, scenario: Scenario) -> None:
        """Run ``scenario`` in a new event loop, on a fresh storage disposed of afterwards."""
        asyncio.run(self._run_scenario(scenario))

    async def _run_scenario(self, scenario: Scenario) -> None:
        storage = await self.create_storage()
        harness = Harness(self, storage)
        try:
            await storage.initialize()
            await scenario(harness)
        finally:
            await harness.dispose_all()
