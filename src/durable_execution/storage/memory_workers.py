"""The in-memory storage's worker registry (the
:class:`~durable_execution.storage.abilities.WorkerRegistry` ability), mixed into
:class:`~durable_execution.storage.memory.InMemoryStorage`."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Collection, Iterable, Mapping
from typing import Protocol

from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.records import ExecutionRecord
from durable_execution.storage.workers import (
    UnservedTask,
    WorkerInfo,
    is_alive,
    unserved_among,
)

__all__ = ["MemoryWorkerRegistry"]

QueueEntry = tuple[int, int, str, int]  # (..., ..., execution id, version), see memory.py


class _ReadyQueueLike(Protocol):
    due: list[QueueEntry]
    delayed: list[QueueEntry]


class MemoryWorkerRegistry:
    """The workers as a dict under the storage's lock. The ready executions of unserved
    tasks are found through the per-task ready queues, so only those tasks' queues are read.
    """

    _lock: threading.Lock
    _rows: dict[str, ExecutionRecord]
    _queue_version: dict[str, int]
    _queues: Mapping[str, _ReadyQueueLike]  # the ready executions of each task

    def __init__(self) -> None:
        self._workers: dict[str, WorkerInfo] = {}

    async def register_worker(self, worker: WorkerInfo) -> None:
        worker = dataclasses.replace(worker, task_ids=tuple(sorted(set(worker.task_ids))))
        with self._lock:
            self._workers[worker.executor_id] = worker

    async def heartbeat_worker(
        self, executor_id: str, *, now_ms: int, task_ids: Collection[str] | None = None
    ) -> bool:
        with self._lock:
            worker = self._workers.get(executor_id)
            if worker is None:
                return False
            tasks = worker.task_ids if task_ids is None else tuple(sorted(set(task_ids)))
            self._workers[executor_id] = dataclasses.replace(
                worker, heartbeat_at_ms=now_ms, task_ids=tasks
            )
            return True

    async def deregister_worker(self, executor_id: str) -> None:
        with self._lock:
            self._workers.pop(executor_id, None)

    async def list_workers(self, *, now_ms: int, alive_within_ms: int) -> list[WorkerInfo]:
        with self._lock:
            alive = [w for w in self._workers.values() if is_alive(w, now_ms, alive_within_ms)]
        return sorted(alive, key=lambda w: (w.started_at_ms, w.executor_id))

    async def unserved_task_ids(
        self, task_ids: Collection[str], *, now_ms: int, alive_within_ms: int
    ) -> set[str]:
        with self._lock:
            return unserved_among(task_ids, self._workers.values(), now_ms, alive_within_ms)

    async def find_unserved_ready(
        self, *, now_ms: int, alive_within_ms: int, limit: int
    ) -> list[UnservedTask]:
        found: list[UnservedTask] = []
        with self._lock:
            queues = self._queues
            unserved = unserved_among(queues, self._workers.values(), now_ms, alive_within_ms)
            for task_id in sorted(unserved):
                if len(found) >= limit:
                    break
                queue = queues[task_id]
                task = self._unserved_task(task_id, (*queue.due, *queue.delayed))
                if task is not None:
                    found.append(task)
        return found

    def _unserved_task(self, task_id: str, entries: Iterable[QueueEntry]) -> UnservedTask | None:
        """What the valid entries of one task's ready queue hold (stale entries are those of
        executions claimed or re-queued since)."""
        count = 0
        oldest: tuple[int, str] | None = None
        for entry in entries:
            execution_id, version = entry[2], entry[3]
            record = self._rows[execution_id]
            if record.status is not S.READY or self._queue_version.get(execution_id) != version:
                continue
            count += 1
            key = (record.created_at_ms, execution_id)
            if oldest is None or key < oldest:
                oldest = key
        if oldest is None:
            return None
        return UnservedTask(task_id, count, oldest[1], oldest[0])

    async def forget_dead_workers(self, *, now_ms: int, dead_for_ms: int) -> int:
        with self._lock:
            dead = [
                executor_id
                for executor_id, worker in self._workers.items()
                if not is_alive(worker, now_ms, dead_for_ms)
            ]
            for executor_id in dead:
                del self._workers[executor_id]
        return len(dead)
