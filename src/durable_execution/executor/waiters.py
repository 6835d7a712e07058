"""Waiting for executions to finish: local notifications, plus one shared poller.

Executions finished by this executor wake their waiters at once. Executions finished elsewhere
(another executor, another process) are found by a single poller that checks all awaited ids
in one storage call per interval, and runs only while someone waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from durable_execution.executor.options import LoggerLike
from durable_execution.storage.protocol import DurableStorage

__all__ = ["FinishWaiters"]


class FinishWaiters:
    """Futures keyed by execution id, resolved when the execution is known to be finished."""

    def __init__(self, storage: DurableStorage, poll_interval_s: float, logger: LoggerLike):
        self._storage = storage
        self._poll_interval_s = poll_interval_s
        self._logger = logger
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._poller: asyncio.Task[None] | None = None

    def notify(self, execution_ids: Iterable[str]) -> None:
        """Wake the waiters of these (now finished) executions."""
        if not self._waiters:
            return
        for execution_id in execution_ids:
            for future in self._waiters.pop(execution_id, ()):
                if not future.done():
                    future.set_result(None)

    async def wait(self, execution_id: str, timeout_s: float | None) -> None:
        """Return once the execution is finished; ``TimeoutError`` after ``timeout_s``."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(execution_id, set()).add(future)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll())
        try:
            try:
                if await self._storage.find_finished([execution_id]):
                    return
            except Exception:  # the poller keeps trying; a long wait outlives a storage blip
                self._logger.warning("checking %s failed; waiting on", execution_id, exc_info=True)
            await asyncio.wait_for(future, timeout_s)
        finally:
            waiting = self._waiters.get(execution_id)
            if waiting is not None:
                waiting.discard(future)
                if not waiting:
                    del self._waiters[execution_id]

    async def _poll(self) -> None:
        while self._waiters:
            await asyncio.sleep(self._poll_interval_s)
            ids = list(self._waiters)
            if not ids:
                break
            try:
                finished = await self._storage.find_finished(ids)
            except Exception:
                self._logger.exception("checking %d awaited executions failed", len(ids))
                continue
            self.notify(finished)
