"""The storage conformance suite on every backend of ``tests/backends.py``.

One test class per entry of ``BACKENDS`` (``TestStorageConformance<Name>``), so a backend
added there is covered here without further change. Each test enters the backend's factory
with a fresh temporary directory inside its own event loop, and leaves it when the suite
disposes of the test's first storage (which it does last).
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path
from typing import ClassVar

import pytest

if "durable_execution.testing" not in sys.modules:  # show detailed assertion failures
    pytest.register_assert_rewrite("durable_execution.testing")

from durable_execution.storage.protocol import DurableStorage
from durable_execution.testing import StorageConformanceSuite

from .backends import BACKENDS, Make


class _BackendConformance(StorageConformanceSuite):
    """The suite on the backend named ``backend``; subclasses are made below."""

    __test__ = False
    backend: ClassVar[str]

    _stack: contextlib.AsyncExitStack
    _make: Make
    _first: DurableStorage

    async def create_storage(self) -> DurableStorage:
        stack = contextlib.AsyncExitStack()
        try:
            directory = stack.enter_context(
                tempfile.TemporaryDirectory(prefix=f"conformance-{self.backend}-")
            )
            self._make = await stack.enter_async_context(BACKENDS[self.backend](Path(directory)))
            self._first = await self._make()
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return self._first

    async def reconnect(self, storage: DurableStorage) -> DurableStorage:
        return await self._make()

    async def dispose(self, storage: DurableStorage) -> None:
        await storage.close()
        if storage is self._first:
            await self._stack.aclose()


def _conformance_class(backend: str) -> type[_BackendConformance]:
    name = "TestStorageConformance" + "".join(p.title() for p in backend.split("_"))
    return type(name, (_BackendConformance,), {"backend": backend, "__module__": __name__})


for _backend in BACKENDS:
    _cls = _conformance_class(_backend)
    globals()[_cls.__name__] = _cls
del _backend, _cls
