"""The worker registry's records and rules (no I/O): who runs which tasks, and who is alive.

An executor that runs records itself as a *worker* in a storage that has the
:class:`~durable_execution.storage.abilities.WorkerRegistry` ability: its id, host, process id,
the task ids it registered, when it started and when it last showed a sign of life (its
heartbeat). A worker is *alive* while its heartbeat is at most ``alive_within_ms`` old; a task
that no live worker registered is *unserved*: its ready executions wait until one comes.

Times are integer milliseconds since the Unix epoch, as given by the executor's clock, like
every time of the storage contract.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass

__all__ = [
    "UnservedTask",
    "WorkerInfo",
    "decode_task_ids",
    "encode_task_ids",
    "is_alive",
    "served_task_ids",
    "unserved_among",
]


def _time(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One executor as the registry knows it (what ``executor.list_workers()`` returns).

    ``task_ids`` are the ids of the tasks it registered (sorted), the ones it claims;
    ``started_at_ms`` is when it registered, at its ``start()``; ``heartbeat_at_ms`` when it
    last refreshed its row.
    """

    executor_id: str
    host: str
    pid: int
    task_ids: tuple[str, ...]
    started_at_ms: int
    heartbeat_at_ms: int

    @property
    def started_at(self) -> dt.datetime:
        """:attr:`started_at_ms` as a timezone-aware UTC datetime."""
        return _time(self.started_at_ms)

    @property
    def heartbeat_at(self) -> dt.datetime:
        """:attr:`heartbeat_at_ms` as a timezone-aware UTC datetime."""
        return _time(self.heartbeat_at_ms)


@dataclass(frozen=True, slots=True)
class UnservedTask:
    """Ready executions of one task that no live worker registered.

    ``ready_count`` is how many wait; the oldest of them (by creation time, then id) is
    ``oldest_execution_id``, created at ``oldest_created_at_ms``.
    """

    task_id: str
    ready_count: int
    oldest_execution_id: str
    oldest_created_at_ms: int


def is_alive(worker: WorkerInfo, now_ms: int, alive_within_ms: int) -> bool:
    """Whether ``worker`` showed a sign of life within ``alive_within_ms`` before ``now_ms``."""
    return worker.heartbeat_at_ms >= now_ms - alive_within_ms


def served_task_ids(workers: Iterable[WorkerInfo], now_ms: int, alive_within_ms: int) -> set[str]:
    """The task ids that at least one live worker among ``workers`` registered."""
    served: set[str] = set()
    for worker in workers:
        if is_alive(worker, now_ms, alive_within_ms):
            served.update(worker.task_ids)
    return served


def unserved_among(
    task_ids: Collection[str], workers: Iterable[WorkerInfo], now_ms: int, alive_within_ms: int
) -> set[str]:
    """The ids among ``task_ids`` that no live worker among ``workers`` registered."""
    return set(task_ids) - served_task_ids(workers, now_ms, alive_within_ms)


def encode_task_ids(task_ids: Iterable[str]) -> str:
    """The task ids as the SQL backends store them: a JSON array, sorted."""
    return json.dumps(sorted(task_ids), separators=(",", ":"))


def decode_task_ids(text: str) -> tuple[str, ...]:
    """The task ids stored as ``text`` by :func:`encode_task_ids`."""
    value = json.loads(text)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"Invalid task id list {text!r}")
    return tuple(value)
