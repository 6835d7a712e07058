"""A pool that reconnects quickly after the server comes back, and hands out the connection
used last.

psycopg_pool replaces a lost connection in the background, and after a failed attempt waits
a second, then twice as long each time. A server restarted at once (a crash, a failover, an
``immediate`` shutdown) is usually back within that first second, but the executors would sit
idle until the pool tries again: about a second after every short outage. Our pool tries
again after 50 ms, doubling up to 0.5 s between attempts, so work resumes within half a
second of the server's return however long it was away, for the price of two connection
attempts a second per lost connection while it is (refused at once by a host whose server is
down; bounded by ``connect_timeout`` otherwise).

psycopg_pool hands out its idle connections in turn (first returned, first taken). Every
statement of ours is prepared once per connection, and the first run of each on a connection
parses and plans it (1-4 ms for the outcome statements, against 0.3-0.5 ms for a prepared
run); taken in turn, the few connections an executor's loops opened at start each paid that
for every hot statement, and a chain of steps ran on a different server process at each
step. Our pool takes the connection given back last: one busy caller keeps one warm
connection (and server process), the others stay idle, and the pool's ``max_idle`` closes
those that remain unused (its shrinking takes the one idle longest).

This leans on ``AsyncConnectionPool._add_connection`` and ``_get_ready_connection`` (private,
stable since psycopg_pool 3.2, the lowest version we accept). Each is checked on its own:
should a later release change one, the pool goes without what leans on it.
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


def _parameters(name: str) -> list[str]:
    method = getattr(AsyncConnectionPool, name, None)
    return [] if method is None else list(inspect.signature(method).parameters)


def _supported() -> bool:
    if AttemptWithBackoff is None:
        return False
    return _parameters("_add_connection")[:3] == ["self", "attempt", "growing"]


# Checked apart: a psycopg_pool that changed this one keeps the quick reconnections.
_LAST_GIVEN_BACK_FIRST = _parameters("_get_ready_connection") == ["self", "timeout"]


if _supported():

    class _QuickAttempt(AttemptWithBackoff):
        INITIAL_DELAY = FIRST_RETRY_S

        def update_delay(self, now: float) -> None:
            super().update_delay(now)
            self.delay = min(self.delay, MAX_RETRY_S)

    class QuickReconnectPool(AsyncConnectionPool[AsyncConnection[Any]]):
        """An :class:`AsyncConnectionPool` whose reconnection attempts start after 50 ms, and
        that hands out the idle connection given back last."""

        if _LAST_GIVEN_BACK_FIRST:

            async def _get_ready_connection(self, timeout: float | None) -> Any:
                # Called under the pool's lock; the pool takes from the left, and connections
                # come back on the right: the newest goes to the left first.
                idle = self._pool
                if len(idle) > 1:
                    idle.appendleft(idle.pop())
                return await super()._get_ready_connection(timeout)

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
