"""Wake-ups over LISTEN/NOTIFY: one dedicated connection per storage, reconnecting forever.

Writes that create work send ``pg_notify(channel, kind)`` in their own transaction (so the
notification is delivered on commit, once per kind: PostgreSQL also folds duplicates within a
transaction). :class:`NotificationListener` keeps a connection (not from the pool: it is
always busy waiting) that LISTENs on the channel and hands each notification to the
registered wake-up listeners, in the event loop. When the connection drops it reconnects with
backoff, and after reconnecting wakes every kind once, since notifications sent while it was
away are lost. Executors also poll, so all of this only lowers latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from psycopg import AsyncConnection, sql

from durable_execution.storage.records import WorkKind

__all__ = ["NotificationListener"]

_log = logging.getLogger("durable_execution.storage.postgres")

_FIRST_BACKOFF_S = 0.05
_MAX_BACKOFF_S = 0.5


class NotificationListener:
    """LISTENs on ``channel`` and calls ``dispatch(kind, sender_pid)`` for each notification.

    ``connect`` opens a new autocommit connection (not a pooled one).
    """

    def __init__(
        self,
        *,
        connect: Callable[[], Awaitable[AsyncConnection[Any]]],
        channel: str,
        dispatch: Callable[[WorkKind, int | None], None],
        ping_interval_s: float = 10.0,
    ) -> None:
        self._connect = connect
        self._channel = channel
        self._dispatch = dispatch
        self._ping_interval_s = ping_interval_s
        self._task: asyncio.Task[None] | None = None
        self._listening = False
        self._served = False  # listened since the last backoff reset
        self._connected_once = False

    @property
    def listening(self) -> bool:
        """Whether the LISTEN connection is up (as far as the listener knows)."""
        return self._listening

    @property
    def running(self) -> bool:
        """Whether the listening task runs (connected or trying to)."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start listening in the running event loop; a no-op when already running."""
        if self.running:
            return
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name="durable-execution-postgres-listener"
        )

    async def stop(self) -> None:
        """Stop listening and close the connection."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run(self) -> None:
        backoff = _FIRST_BACKOFF_S
        while True:
            try:
                await self._listen()
            except Exception as exc:  # the connection failed or broke: try again later
                log = _log.warning if self._connected_once else _log.info
                log("PostgreSQL wake-up listener disconnected (%s); reconnecting", exc)
            if self._served:
                backoff = _FIRST_BACKOFF_S
                self._served = False
            await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
            backoff = min(_MAX_BACKOFF_S, backoff * 2)

    async def _listen(self) -> None:
        """Connect, LISTEN, and deliver notifications until the connection fails."""
        conn = await self._connect()
        try:
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
            self._listening = self._served = True
            if self._connected_once:  # notifications sent while disconnected are lost
                for kind in WorkKind:
                    self._dispatch(kind, None)
            self._connected_once = True
            while True:
                async for notification in conn.notifies(timeout=self._ping_interval_s):
                    self._deliver(notification.channel, notification.payload, notification.pid)
                await conn.execute("SELECT 1")  # quiet for a while: is the server still there?
        finally:
            self._listening = False
            await conn.close()

    def _deliver(self, channel: str, payload: str, pid: int) -> None:
        if channel != self._channel:
            return
        try:
            kind = WorkKind(payload)
        except ValueError:
            _log.debug("ignoring wake-up with unknown payload %r", payload)
            return
        self._dispatch(kind, pid)
