"""A pool that reconnects quickly after the server comes back.

psycopg_pool replaces a lost connection in the background, and after a failed attempt waits
a second, then twice as long each time. A server restarted at once (a crash, a failover, an
``immediate`` shutdown) is usually back within that first second, but the executors would sit
idle until the pool tries again: about a second after every short outage. Our pool tries
again after 50 ms, doubling up to 0.5 s between attempts, so work resumes within half a
second of the server's return however long it was away, for the price of two connection
attempts a second per lost connection while it is (refused at once by a host whose server is
down; bounded by ``connect_timeout`` otherwise).

This leans on ``AsyncConnectionPool._add_connection`` (private, stable since psycopg_pool 3.2,
the lowest version we accept). Should a later release change it, the plain pool is used.
"""

from __future__ import annotations

import inspect
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

__all__ = ["FIRST_RETRY_S", "MAX_RETRY_S", "pool_class"]

FIRST_RETRY_S = 0.05
MAX_RETRY_S = 0.5

try:
    from psycopg_pool.base import AttemptWithBackoff
except ImportError:  # pragma: no cover - a psycopg_pool without it: the plain pool
    AttemptWithBackoff = None  # type: ignore[assignment,misc]


def _supported() -> bool:
    if AttemptWithBackoff is None:
        return False
    method = getattr(AsyncConnectionPool, "_add_connection", None)
    if method is None:
        return False
    return list(inspect.signature(method).parameters)[:3] == ["self", "attempt", "growing"]


if _supported():

    class _QuickAttempt(AttemptWithBackoff):
        INITIAL_DELAY = FIRST_RETRY_S

        def update_delay(self, now: float) -> None:
            super().update_delay(now)
            self.delay = min(self.delay, MAX_RETRY_S)

    class QuickReconnectPool(AsyncConnectionPool[AsyncConnection[Any]]):
        """An :class:`AsyncConnectionPool` whose reconnection attempts start after 50 ms."""

        async def _add_connection(
            self, attempt: AttemptWithBackoff | None, growing: bool = False
        ) -> None:
            if attempt is None:
                attempt = _QuickAttempt(timeout=self.reconnect_timeout)
            await super()._add_connection(attempt, growing)

    _POOL: type[AsyncConnectionPool[AsyncConnection[Any]]] = QuickReconnectPool
else:  # pragma: no cover
    _POOL = AsyncConnectionPool


def pool_class() -> type[AsyncConnectionPool[AsyncConnection[Any]]]:
    """The pool class a storage that owns its pool creates."""
    return _POOL
