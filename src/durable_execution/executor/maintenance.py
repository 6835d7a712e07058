"""The executor's share of the store's housekeeping: a background loop that calls the storage's
:meth:`~durable_execution.storage.abilities.Maintenance.maintain` every
``maintenance_interval_ms``, the first time one interval after the start (0: never).

Only on a storage with the :class:`~durable_execution.storage.abilities.Maintenance` ability;
the storage decides whether there is anything to do and keeps several executors from doing it
at once (PostgreSQL: a ``VACUUM`` of the executions table when the server's autovacuum is off;
SQLite: the incremental vacuum). A pass still running at shutdown is cancelled (a ``VACUUM``
interrupted loses nothing but its own progress).
"""

from __future__ import annotations

from durable_execution.executor.loop import BackgroundLoop
from durable_execution.executor.options import LoggerLike
from durable_execution.storage.abilities import Maintenance

__all__ = ["StorageMaintenance"]


class StorageMaintenance:
    """The maintenance loop of one started executor."""

    def __init__(self, *, storage: object, interval_ms: int, logger: LoggerLike) -> None:
        self.storage = storage if isinstance(storage, Maintenance) and interval_ms > 0 else None
        self._interval_ms = interval_ms
        self._skip_first = True
        self._loop = BackgroundLoop("maintenance", self._step, interval_ms / 1000, logger)

    def start(self) -> None:
        if self.storage is not None:
            self._skip_first = True
            self._loop.start()

    async def stop(self) -> None:
        if self.storage is not None:
            await self._loop.cancel()

    async def _step(self) -> bool:
        if self._skip_first:  # the loop steps at once: the first pass waits one interval
            self._skip_first = False
        else:
            assert self.storage is not None
            await self.storage.maintain(min_interval_ms=self._interval_ms)
        return False
