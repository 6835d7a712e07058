"""The executor's view of the worker registry: :meth:`WorkerMethods.list_workers`, and which
tasks keep an execution waiting because no live worker registered them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from durable_execution.executor.presence import RegistrySettings
from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.abilities import WorkerRegistry, require
from durable_execution.storage.protocol import DurableStorage
from durable_execution.storage.records import ExecutionRecord
from durable_execution.storage.workers import WorkerInfo

__all__ = ["MAX_LEVELS", "WorkerMethods", "unserved_task_ids"]

MAX_LEVELS = 32
"""How deep below an execution :func:`unserved_task_ids` looks (one storage read a level)."""

# What an execution in each of these statuses waits for: a worker of its own task (to claim
# it, or to advance the parent once its children are done), and its unfinished descendants.
_WAITING = frozenset({S.READY, S.WAITING_FOR_CHILDREN, S.WAITING_FOR_ON_RUN_AND_CHILDREN_COMPLETE})

_LIST_WORKERS = "list the workers"
_CHECK_WORKERS = "check which tasks have a live worker (check_workers=True)"


async def unserved_task_ids(
    storage: DurableStorage,
    registry: WorkerRegistry,
    record: ExecutionRecord,
    *,
    now_ms: int,
    alive_within_ms: int,
) -> tuple[str, ...]:
    """The ids of the tasks, sorted, that keep ``record`` waiting because no live worker
    registered them: its own task while it is ready or waits for its children, and those of
    its unfinished descendants in the same statuses (up to :data:`MAX_LEVELS` levels down).

    Running executions are left out: their owner has them. One storage read per level of
    unfinished descendants, and one for the registry.
    """
    waiting: set[str] = set()
    level = [record]
    for _ in range(MAX_LEVELS):
        below: list[str] = []
        for current in level:
            if current.status not in _WAITING:
                continue
            waiting.add(current.task_id)
            below.extend(current.child_execution_ids)
            if current.completion_execution_id is not None:
                below.append(current.completion_execution_id)
        if not below:
            break
        level = await storage.get_executions(below)
    if not waiting:
        return ()
    unserved = await registry.unserved_task_ids(
        waiting, now_ms=now_ms, alive_within_ms=alive_within_ms
    )
    return tuple(sorted(unserved))


class WorkerMethods:
    """What :class:`~durable_execution.DurableExecutor` offers about workers."""

    storage: DurableStorage
    _clock: Callable[[], int]
    _registry_settings: RegistrySettings

    def _ensure_initialized(self) -> Awaitable[None]:
        raise NotImplementedError  # the executor's

    async def list_workers(self) -> list[WorkerInfo]:
        """The live workers of the storage: the executors that run on it (in any process or
        host) and showed a sign of life recently, the earliest started first.

        Each :class:`~durable_execution.storage.workers.WorkerInfo` gives the executor's id,
        host, process id, the ids of the tasks it registered, when it started and its last
        heartbeat. Works from an executor that was never started (it is not listed itself
        then). Raises :class:`~durable_execution.errors.UnsupportedByStorageError` when the
        storage lacks the :class:`~durable_execution.storage.abilities.WorkerRegistry`
        ability.
        """
        registry = require(self.storage, WorkerRegistry, _LIST_WORKERS)
        await self._ensure_initialized()
        return await registry.list_workers(
            now_ms=self._clock(), alive_within_ms=self._registry_settings.alive_within_ms
        )

    async def _unserved_task_ids(self, record: ExecutionRecord) -> tuple[str, ...]:
        """:func:`unserved_task_ids` of ``record``, on this executor's storage and clock."""
        registry = require(self.storage, WorkerRegistry, _CHECK_WORKERS)
        return await unserved_task_ids(
            self.storage,
            registry,
            record,
            now_ms=self._clock(),
            alive_within_ms=self._registry_settings.alive_within_ms,
        )
