"""The loop-lag watchdog: a WARNING, while it happens, when the event loop is blocked.

An async task that blocks (``time.sleep``, a sync HTTP client, heavy CPU in ``async def``)
stops every other run, every background loop and every timeout timer of its executor. The
watchdog makes that visible: the event loop records a heartbeat every quarter of the
threshold, and a daemon thread checks it as often; when the heartbeat is older than the
threshold, the thread logs one WARNING per stall, naming the running executions and, when it
can tell, the one whose code the loop is executing. Cheap when nothing is wrong: one timer
callback and one thread wake-up per quarter threshold.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable, Mapping
from types import FrameType
from typing import Any

from durable_execution.executor.options import LoggerLike
from durable_execution.executor.runner import RunningExecution

__all__ = ["LoopWatchdog"]

_MIN_TICK_S = 0.005
_MAX_LISTED = 20


class LoopWatchdog:
    """Warns when the running loop is blocked longer than ``threshold_s`` (see module doc).

    ``running`` is the executor's map of running executions (read from the watchdog's thread
    while the loop is blocked, so it does not change meanwhile).
    """

    def __init__(
        self,
        threshold_s: float,
        logger: LoggerLike,
        running: Mapping[str, RunningExecution],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold_s = threshold_s
        self._tick_s = max(threshold_s / 4, _MIN_TICK_S)
        self._logger = logger
        self._running = running
        self._clock = clock
        self._last_beat = clock()
        self._warned_beat: float | None = None  # the heartbeat of the stall warned about
        self._stop = threading.Event()
        self._handle: asyncio.TimerHandle | None = None
        self._loop_thread_id: int | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start watching the running event loop."""
        loop = asyncio.get_running_loop()
        self._loop_thread_id = threading.get_ident()
        self._stop.clear()
        self._beat(loop)
        self._thread = threading.Thread(
            target=self._watch, name="durable-loop-watchdog", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (the thread ends at its next wake-up)."""
        self._stop.set()
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _beat(self, loop: asyncio.AbstractEventLoop) -> None:
        self._last_beat = self._clock()
        if not self._stop.is_set():
            self._handle = loop.call_later(self._tick_s, self._beat, loop)

    def _watch(self) -> None:
        while not self._stop.wait(self._tick_s):
            self.check()

    def check(self) -> bool:
        """Warn if the loop is blocked now and this stall was not warned about yet; returns
        whether it warned."""
        beat = self._last_beat
        lag = self._clock() - beat
        if lag <= self._threshold_s or self._warned_beat == beat or self._stop.is_set():
            return False
        self._warned_beat = beat
        self._logger.warning(
            "the event loop has been blocked for %.1f s (loop_lag_warning_ms=%d): an async "
            "task may be calling blocking code (time.sleep, sync I/O, heavy CPU); nothing else "
            "runs meanwhile, timeouts included. %s. Running executions: %s",
            lag,
            round(self._threshold_s * 1000),
            self._culprit(),
            self._describe_running(),
        )
        return True

    def _describe_running(self) -> str:
        try:
            runs = list(self._running.values())
        except RuntimeError:  # changed while read: the loop is moving again
            return "(changing)"
        if not runs:
            return "none"
        shown = ", ".join(f"{r.record.execution_id} ({r.task.id})" for r in runs[:_MAX_LISTED])
        more = len(runs) - _MAX_LISTED
        return shown + (f" and {more} more" if more > 0 else "")

    def _culprit(self) -> str:
        """Where the loop's thread is: in the run function of which execution, if any."""
        frame = sys._current_frames().get(self._loop_thread_id or -1)
        if frame is None:
            return "The loop's thread was not found"
        where = _location(frame)
        try:
            runs = list(self._running.values())
        except RuntimeError:
            runs = []
        codes: dict[Any, list[RunningExecution]] = {}
        for run in runs:
            code = getattr(run.task.run_fn, "__code__", None)
            if code is not None:
                codes.setdefault(code, []).append(run)
        current: FrameType | None = frame
        while current is not None:
            matching = codes.get(current.f_code)
            if matching:
                ids = ", ".join(r.record.execution_id for r in matching[:_MAX_LISTED])
                return f"Blocked in task {matching[0].task.id} ({ids}), at {where}"
            current = current.f_back
        return f"Blocked at {where}"


def _location(frame: FrameType) -> str:
    code = frame.f_code
    return f"{code.co_filename}:{frame.f_lineno} in {code.co_name}"
