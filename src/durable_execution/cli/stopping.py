"""When a worker stops: the first stop request is graceful, the second one exits at once.

A worker alone takes its requests from SIGTERM and SIGINT. A worker under a supervisor
(``worker --processes N``) also takes them from its standard input, a pipe only the
supervisor writes to: one byte per request it forwards. There, the supervisor decides when to
stop at once, and signals sent to the worker directly never escalate: under systemd's default
``KillMode=control-group`` every process of the service gets the SIGTERM, and the supervisor
forwards it too; counted twice, it would cut the graceful stop short. The pipe also reads as
closed once the supervisor is gone (even killed without a chance to stop its workers), which
is a graceful stop request as well.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

__all__ = ["SUPERVISED_ENV", "StopRequests"]

logger = logging.getLogger("durable_execution.worker")

SUPERVISED_ENV = "DURABLE_EXECUTION_SUPERVISED"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_STDIN = 0


class StopRequests:
    """Listens for stop requests while installed; :meth:`wait` returns the first one's reason."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._reason = ""
        self._supervised = bool(os.environ.get(SUPERVISED_ENV))
        self._from_supervisor = 0
        self._reading = False

    def install(self) -> None:
        for signum in STOP_SIGNALS:
            self._loop.add_signal_handler(signum, self._signalled, signum)
        if self._supervised:
            self._loop.add_reader(_STDIN, self._read_supervisor)
            self._reading = True

    def uninstall(self) -> None:
        for signum in STOP_SIGNALS:
            self._loop.remove_signal_handler(signum)
        self._stop_reading()

    async def wait(self) -> str:
        await self._stop.wait()
        return self._reason

    def _signalled(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if not self._stop.is_set():
            self._request(name)
        elif self._supervised:
            logger.info("%s again: already stopping (the supervisor decides when to hurry)", name)
        else:
            self._exit_now(f"{name} again", 128 + signum)

    def _read_supervisor(self) -> None:
        try:
            data = os.read(_STDIN, 64)
        except OSError:
            data = b""
        if not data:
            self._stop_reading()
            if not self._stop.is_set():
                logger.warning("the supervisor is gone: stopping")
                self._request("supervisor gone")
            return
        for _ in data:
            self._from_supervisor += 1
            if self._from_supervisor == 1:
                if not self._stop.is_set():
                    self._request("stop from the supervisor")
            else:
                self._exit_now("the supervisor said again", 128 + signal.SIGTERM)

    def _request(self, reason: str) -> None:
        self._reason = reason
        self._stop.set()

    def _stop_reading(self) -> None:
        if self._reading:
            self._loop.remove_reader(_STDIN)
            self._reading = False

    @staticmethod
    def _exit_now(why: str, code: int) -> None:
        # Runs still going keep their leases until they expire; then another worker takes them.
        logger.warning("%s: stopping at once", why)
        logging.shutdown()
        os._exit(code)
