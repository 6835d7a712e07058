"""Coalescing NOTIFY under load: at most one notifying statement per interval, per storage.

Every statement that creates work may ``NOTIFY``; under load that would mean thousands of
notifications a second, each taking PostgreSQL's global notification-queue lock at commit and
waking every idle listener. Instead, the first statement of an interval notifies (no delay when
the system is quiet), the others of the same interval do not, and one trailing ``NOTIFY`` of
every kind is sent at the end of an interval in which some were skipped, so the last work of a
burst is never left to polling.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

__all__ = ["NotifyThrottle"]

_log = logging.getLogger("durable_execution.storage.postgres")


class NotifyThrottle:
    """Decides whether the next statement may notify, and sends the trailing notification."""

    def __init__(self, interval_s: float, send_all: Callable[[], Awaitable[None]]) -> None:
        self._interval_s = interval_s
        self._send_all = send_all
        self._last = -float("inf")
        self._skipped = False
        self._trailing: asyncio.Task[None] | None = None

    def allow(self) -> bool:
        """Whether the statement about to run may notify (and then it counts as this
        interval's notification)."""
        now = time.monotonic()
        if now - self._last >= self._interval_s:
            self._last = now
            return True
        self._skipped = True
        if self._trailing is None or self._trailing.done():
            self._trailing = asyncio.get_running_loop().create_task(self._send_trailing())
        return False

    async def _send_trailing(self) -> None:
        while self._skipped:
            await asyncio.sleep(max(0.0, self._last + self._interval_s - time.monotonic()))
            if time.monotonic() - self._last < self._interval_s:
                continue  # a statement notified meanwhile and opened a new interval
            self._skipped = False
            self._last = time.monotonic()
            try:
                await self._send_all()
            except Exception:  # the executors' polling covers a lost wake-up
                _log.warning("sending a coalesced NOTIFY failed", exc_info=True)

    def cancel(self) -> None:
        """Drop a pending trailing notification (the storage is closing)."""
        if self._trailing is not None:
            self._trailing.cancel()
            self._trailing = None
        self._skipped = False
