"""A background loop: run a step, then sleep its interval unless woken or there is more work."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable

from durable_execution.executor.options import LoggerLike

__all__ = ["BackgroundLoop"]

_MAX_BACKOFF_S = 5.0


class BackgroundLoop:
    """Runs ``step`` until stopped. ``step`` returns True when more work is likely waiting.

    A failing step is logged and retried with exponential backoff (up to ``max_backoff_s``),
    never fatal. :meth:`wake` may be called from any thread; wake-ups that arrive while a step
    runs are not lost.
    """

    def __init__(
        self,
        name: str,
        step: Callable[[], Awaitable[bool]],
        interval_s: float,
        logger: LoggerLike,
        max_backoff_s: float = _MAX_BACKOFF_S,
    ) -> None:
        self.name = name
        self._step = step
        self._interval_s = interval_s
        self._logger = logger
        self._max_backoff_s = max_backoff_s
        self._event = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread_id: int | None = None
        self._pending_threadsafe = False
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread_id = threading.get_ident()
        self._task = asyncio.create_task(self._run(), name=f"durable-execution-{self.name}")

    def wake(self) -> None:
        """Run the next step now instead of after the interval."""
        if threading.get_ident() == self._thread_id:
            self._event.set()
            return
        loop = self._loop
        if loop is None or self._pending_threadsafe:
            return
        self._pending_threadsafe = True
        try:
            loop.call_soon_threadsafe(self._wake_in_loop)
        except RuntimeError:  # the event loop is closed
            self._pending_threadsafe = False

    def _wake_in_loop(self) -> None:
        self._pending_threadsafe = False
        self._event.set()

    async def stop(self) -> None:
        """Stop after the current step."""
        self._stopping = True
        self._event.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def cancel(self) -> None:
        """Stop now, cancelling the current step (for a step that may run long)."""
        self._stopping = True
        self._event.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    @property
    def stopping(self) -> bool:
        return self._stopping

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            self._event.clear()
            try:
                more = await self._step()
                failures = 0
            except Exception:
                failures += 1
                self._logger.exception(
                    "background loop %s failed (%d in a row)", self.name, failures
                )
                more = False
                await self._sleep(min(self._max_backoff_s, self._interval_s * 2**failures))
                continue
            if self.stopping:
                break
            if more:
                await asyncio.sleep(0)  # let other tasks in between full batches
                continue
            await self._sleep(self._interval_s)

    async def _sleep(self, seconds: float) -> None:
        if self._event.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), seconds)
