"""An executor's presence in the worker registry: registered at start, kept alive by a
heartbeat, removed at shutdown; and the report of work that no live worker can run.

Only on a storage with the :class:`~durable_execution.storage.abilities.WorkerRegistry`
ability; on another, :class:`WorkerPresence` does nothing and the executor runs as before.

Two background loops, never on the path of a run or a wait:

- heartbeat (every ``heartbeat_interval_ms``, and at once when tasks are defined after the
  start): one small write of this worker's row, with its task ids when they changed. A row that
  went missing (forgotten after a long pause) is registered again.
- unserved (every ``unserved_check_interval_ms``, the first time one interval after the start,
  when the other workers of a fleet started together have registered too): only the live
  worker that started first (the *leader*, from :meth:`list_workers`) reads the ready
  executions of tasks no live worker registered, logs a WARNING once per such task (while it
  stays unserved), and forgets workers dead for ``forget_after_ms``.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from collections.abc import Callable, Collection
from dataclasses import dataclass

from durable_execution.executor.loop import BackgroundLoop
from durable_execution.executor.options import LoggerLike
from durable_execution.storage.abilities import WorkerRegistry
from durable_execution.storage.workers import UnservedTask, WorkerInfo

__all__ = ["RegistrySettings", "WorkerPresence"]


@dataclass(frozen=True, slots=True)
class RegistrySettings:
    """How an executor keeps its row in the worker registry, and judges the others'."""

    heartbeat_interval_ms: int = 5_000
    """How often a worker refreshes its heartbeat."""
    alive_within_ms: int = 30_000
    """A worker whose heartbeat is older than this is dead (six missed heartbeats)."""
    unserved_check_interval_ms: int = 30_000
    """How often the leader looks for ready executions of unserved tasks."""
    forget_after_ms: int = 3_600_000
    """The rows of workers dead for this long are deleted (by the leader)."""
    max_unserved_tasks: int = 100
    """At most this many unserved tasks are reported per check."""


class WorkerPresence:
    """This executor's row in the registry, and the leader's report of unserved work."""

    def __init__(
        self,
        *,
        storage: object,
        executor_id: str,
        task_ids: Callable[[], Collection[str]],
        clock: Callable[[], int],
        logger: LoggerLike,
        settings: RegistrySettings,
    ) -> None:
        self.registry = storage if isinstance(storage, WorkerRegistry) else None
        self._executor_id = executor_id
        self._task_ids = task_ids
        self._clock = clock
        self._logger = logger
        self._settings = settings
        self._started_at_ms = 0
        self._sent_tasks: frozenset[str] | None = None  # as the stored row has them
        self._last_beat_ms = 0
        self._skip_check = True
        self._warned: set[str] = set()
        self._loops = [
            BackgroundLoop(
                "worker-heartbeat", self._beat, settings.heartbeat_interval_ms / 1000, logger
            ),
            BackgroundLoop(
                "unserved-work",
                self._scheduled_check,
                settings.unserved_check_interval_ms / 1000,
                logger,
            ),
        ]

    async def start(self) -> None:
        """Register (a failure is logged: the heartbeat loop registers later), then start the
        loops."""
        if self.registry is None:
            return
        now = self._clock()
        self._started_at_ms = now
        self._skip_check = True
        try:
            await self._register(now)
        except Exception:
            self._logger.exception(
                "registering executor %s as a worker failed; the heartbeat will retry",
                self._executor_id,
            )
        for loop in self._loops:
            loop.start()

    def tasks_changed(self) -> None:
        """Tasks were defined: send them with the next heartbeat, now."""
        if self.registry is not None and self._sent_tasks is not None:
            self._loops[0].wake()

    async def stop(self) -> None:
        """Stop the loops and remove this worker's row (a failure is logged: the row then
        ages out)."""
        if self.registry is None:
            return
        for loop in self._loops:
            await loop.stop()
        try:
            await self.registry.deregister_worker(self._executor_id)
        except Exception:
            self._logger.exception(
                "deregistering executor %s failed; its row will age out", self._executor_id
            )

    async def _register(self, now: int) -> None:
        assert self.registry is not None
        tasks = frozenset(self._task_ids())
        worker = WorkerInfo(
            executor_id=self._executor_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            task_ids=tuple(sorted(tasks)),
            started_at_ms=self._started_at_ms,
            heartbeat_at_ms=now,
        )
        await self.registry.register_worker(worker)
        self._sent_tasks, self._last_beat_ms = tasks, now

    async def _beat(self) -> bool:
        assert self.registry is not None
        now = self._clock()
        tasks = frozenset(self._task_ids())
        half = self._settings.heartbeat_interval_ms // 2
        if tasks == self._sent_tasks and now - self._last_beat_ms < half:
            return False  # woken early with nothing new (or the first step, just registered)
        if self._sent_tasks is None or not await self.registry.heartbeat_worker(
            self._executor_id, now_ms=now, task_ids=None if tasks == self._sent_tasks else tasks
        ):
            await self._register(now)  # never registered, or forgotten after a long pause
        self._sent_tasks, self._last_beat_ms = tasks, now
        return False

    async def _scheduled_check(self) -> bool:
        """The unserved loop's step: skips the step at the start (see the module docstring)."""
        if self._skip_check:
            self._skip_check = False
        else:
            await self.report_unserved()
        return False

    async def report_unserved(self) -> None:
        """If this worker leads: forget long-dead workers, and warn about each task that has
        ready executions and no live worker, unless it did already while the task stayed
        unserved."""
        assert self.registry is not None
        now = self._clock()
        settings = self._settings
        workers = await self.registry.list_workers(
            now_ms=now, alive_within_ms=settings.alive_within_ms
        )
        if not workers or workers[0].executor_id != self._executor_id:
            return  # another worker leads
        await self.registry.forget_dead_workers(now_ms=now, dead_for_ms=settings.forget_after_ms)
        unserved = await self.registry.find_unserved_ready(
            now_ms=now, alive_within_ms=settings.alive_within_ms, limit=settings.max_unserved_tasks
        )
        for task in unserved:
            if task.task_id not in self._warned:
                self._warn(task)
        self._warned = {task.task_id for task in unserved}

    def _warn(self, task: UnservedTask) -> None:
        oldest = dt.datetime.fromtimestamp(task.oldest_created_at_ms / 1000, tz=dt.UTC)
        self._logger.warning(
            "no live executor has registered task %r: %d ready execution(s) of it wait, the "
            "oldest %s (created %s); define the task on an executor that runs, or cancel them",
            task.task_id,
            task.ready_count,
            task.oldest_execution_id,
            oldest.isoformat(timespec="seconds"),
        )
