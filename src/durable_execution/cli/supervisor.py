"""``worker --processes N``: a supervisor running N worker processes.

Each worker is a new interpreter (``python -m durable_execution worker ...``, spawned, never
forked): it imports the application itself and owns its event loop, threads and storage
connections from the start. A fork would copy the supervisor's state, and forking a process
that holds threads or an event loop is unsafe; the supervisor itself loads nothing.

The workers run in their own process group, so a terminal's Ctrl-C reaches only the
supervisor. A worker that exits is started again after a back-off that doubles while workers
keep dying young (a crash loop waits up to :data:`MAX_RESTART_DELAY_S` between attempts) and
is reset once one lived long enough; a worker that exits with a usage error (the application
cannot be loaded) stops them all instead. On SIGTERM or SIGINT the supervisor forwards a stop
request to every worker on its standard input (see :mod:`.stopping`: a signal sent to the
workers too, as systemd does, is not counted twice), waits for them up to the shutdown
timeout plus a margin for the closing work, then kills those left; a second signal is
forwarded too (the workers then stop at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time

from durable_execution.cli import exit_codes
from durable_execution.cli.stopping import SUPERVISED_ENV
from durable_execution.cli.worker import WorkerSettings
from durable_execution.storage.url import STORAGE_URL_ENV

__all__ = ["MAX_RESTART_DELAY_S", "restart_delay_s", "supervise"]

logger = logging.getLogger("durable_execution.supervisor")

FIRST_RESTART_DELAY_S = 0.5
MAX_RESTART_DELAY_S = 30.0
HEALTHY_AFTER_S = 30.0  # a worker that ran this long resets the back-off
STOP_MARGIN_S = 5.0  # beyond the shutdown timeout: closing work, then the process's exit
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def restart_delay_s(quick_deaths: int) -> float:
    """The wait before restarting a worker after ``quick_deaths`` deaths in a row, each
    soon after its start (1 for the first): 0.5 s, 1 s, 2 s, ... up to 30 s."""
    return min(MAX_RESTART_DELAY_S, FIRST_RESTART_DELAY_S * 2.0 ** max(0, quick_deaths - 1))


class Supervisor:
    def __init__(
        self, command: list[str], env: dict[str, str], count: int, stop_after_s: float
    ) -> None:
        self.exit_code = 0
        self._command = command
        self._env = {**env, SUPERVISED_ENV: "1"}  # stop requests come on stdin (stopping.py)
        self._count = count
        self._stop_after_s = stop_after_s
        self._stopping = asyncio.Event()
        self._signals: list[int] = []
        self._workers: dict[int, asyncio.subprocess.Process] = {}

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in _STOP_SIGNALS:
            loop.add_signal_handler(signum, self._received, signum)
        try:
            slots = [asyncio.create_task(self._keep_running(slot)) for slot in range(self._count)]
            await self._stopping.wait()
            await self._stop_all()
            for slot in slots:
                slot.cancel()
            await asyncio.gather(*slots, return_exceptions=True)
        finally:
            for signum in _STOP_SIGNALS:
                loop.remove_signal_handler(signum)
        logger.info("supervisor stopped")
        return self.exit_code

    def _received(self, signum: int) -> None:
        self._signals.append(signum)
        logger.info("supervisor: %s, forwarding it to the workers", signal.Signals(signum).name)
        for process in self._workers.values():
            _request_stop(process, 1)
        self._stopping.set()

    async def _keep_running(self, slot: int) -> None:
        quick_deaths = 0
        while not self._stopping.is_set():
            started = time.monotonic()
            process = await asyncio.create_subprocess_exec(
                *self._command, env=self._env, process_group=0, stdin=asyncio.subprocess.PIPE
            )
            self._workers[slot] = process
            logger.info("supervisor: worker %d started (pid %d)", slot + 1, process.pid)
            _request_stop(process, len(self._signals))  # arrived while it was being started
            code = await process.wait()
            if self._stopping.is_set():
                return
            if code == exit_codes.USAGE:  # the application cannot be loaded: no use retrying
                logger.error("supervisor: worker %d exited with a usage error; stopping", slot + 1)
                self.exit_code = exit_codes.USAGE
                self._received(signal.SIGTERM)
                return
            quick_deaths = quick_deaths + 1 if time.monotonic() - started < HEALTHY_AFTER_S else 1
            delay = restart_delay_s(quick_deaths)
            logger.warning(
                "supervisor: worker %d (pid %d) exited with %s; restarting it in %.1fs",
                slot + 1,
                process.pid,
                code,
                delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _stop_all(self) -> None:
        waits = [asyncio.create_task(p.wait()) for p in self._workers.values()]
        if not waits:
            return
        _, left = await asyncio.wait(waits, timeout=self._stop_after_s)
        for process in self._workers.values():
            if process.returncode is None:
                logger.warning("supervisor: worker pid %d did not stop; killing it", process.pid)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
        if left:
            await asyncio.wait(left)


def _request_stop(process: asyncio.subprocess.Process, times: int) -> None:
    """Forward ``times`` stop requests to a worker (see stopping.py): a byte each."""
    stdin = process.stdin
    if times and process.returncode is None and stdin is not None and not stdin.is_closing():
        stdin.write(b"s" * times)


async def supervise(spec: str, count: int, settings: WorkerSettings, url: str | None) -> int:
    """Run ``count`` workers of ``spec`` until a signal; the exit code."""
    command = [sys.executable, "-m", "durable_execution", "worker", spec, *settings.flags()]
    env = dict(os.environ)
    if url:  # in the environment, where ps does not show a password in it
        env[STORAGE_URL_ENV] = url
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()
    command += ["--log-level", level]
    logger.info("supervisor: running %d workers of %s (pid %d)", count, spec, os.getpid())
    supervisor = Supervisor(command, env, count, settings.shutdown_timeout_s + STOP_MARGIN_S)
    return await supervisor.run()
