"""Coalescing NOTIFY under load: at most one notifying statement per interval, per storage.

Every statement that creates work may ``NOTIFY``; under load that would mean thousands of
notifications a second, each taking PostgreSQL's global notification-queue lock at commit and
waking every idle listener. Instead, the first statement of an interval may notify (no delay
when the system is quiet), the others of the same interval may not; a statement kept quiet
reports the kinds of work it created (:meth:`NotifyThrottle.missed`), and one trailing
``NOTIFY`` of just those kinds goes out at the end of the interval, so the last work of a burst
is never left to polling, and no loop is woken for nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection

__all__ = ["NotifyThrottle"]

_log = logging.getLogger("durable_execution.storage.postgres")


class NotifyThrottle:
    """Decides whether the next statement may notify, and sends the trailing notification."""

    def __init__(self, interval_s: float, send: Callable[[list[str]], Awaitable[None]]) -> None:
        self._interval_s = interval_s
        self._send = send
        self._last = -float("inf")
        self._missed: set[str] = set()
        self._trailing: asyncio.Task[None] | None = None

    def allow(self) -> bool:
        """Whether the statement about to run may notify (and then it counts as this
        interval's notification)."""
        now = time.monotonic()
        if now - self._last >= self._interval_s:
            self._last = now
            return True
        return False

    def missed(self, kinds: Collection[str]) -> None:
        """A statement kept quiet created work of these kinds: announce it at the end of the
        interval."""
        if not kinds:
            return
        self._missed.update(kinds)
        if self._trailing is None or self._trailing.done():
            self._trailing = asyncio.get_running_loop().create_task(self._send_trailing())

    async def _send_trailing(self) -> None:
        while self._missed:
            await asyncio.sleep(max(0.0, self._last + self._interval_s - time.monotonic()))
            if time.monotonic() - self._last < self._interval_s:
                continue  # a statement notified meanwhile and opened a new interval
            kinds, self._missed = self._missed, set()
            self._last = time.monotonic()
            try:
                await self._send(sorted(kinds))
            except Exception:  # the executors' polling covers a lost wake-up
                _log.warning("sending a coalesced NOTIFY failed", exc_info=True)

    def cancel(self) -> None:
        """Drop a pending trailing notification (the storage is closing)."""
        if self._trailing is not None:
            self._trailing.cancel()
            self._trailing = None
        self._missed.clear()
