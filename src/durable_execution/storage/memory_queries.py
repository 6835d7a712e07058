"""The in-memory storage's queries (the
:class:`~durable_execution.storage.abilities.ExecutionQueries` ability), mixed into
:class:`~durable_execution.storage.memory.InMemoryStorage`: plain scans of its rows under its
lock, with the rules of :mod:`durable_execution.storage.inspection`."""

from __future__ import annotations

import threading

from durable_execution.storage.inspection import (
    CountKey,
    ExecutionCount,
    ExecutionFilter,
    ListPosition,
    count_records,
    list_key,
    matches,
)
from durable_execution.storage.records import ExecutionRecord

__all__ = ["MemoryExecutionQueries"]


class MemoryExecutionQueries:
    """Each query reads every row (a store in memory is small enough for that)."""

    _lock: threading.Lock
    _rows: dict[str, ExecutionRecord]
    _children: dict[str, list[str]]

    def _with_children(self, record: ExecutionRecord) -> ExecutionRecord:
        raise NotImplementedError  # InMemoryStorage's

    async def list_executions(
        self, where: ExecutionFilter, *, limit: int, after: ListPosition | None = None
    ) -> list[ExecutionRecord]:
        with self._lock:
            found = [
                record
                for record in self._rows.values()
                if matches(record, where) and (after is None or list_key(record) < after)
            ]
            found.sort(key=list_key, reverse=True)
            return [self._with_children(record) for record in found[:limit]]

    async def get_execution_tree(self, root_execution_id: str) -> list[ExecutionRecord]:
        with self._lock:
            root = self._rows.get(root_execution_id)
            if root is None:
                return []
            tree: list[ExecutionRecord] = []
            pending = [root]
            while pending:
                record = pending.pop()
                tree.append(self._with_children(record))
                below = list(self._children.get(record.execution_id, ()))
                if record.completion_execution_id is not None:
                    below.append(record.completion_execution_id)
                pending.extend(self._rows[i] for i in below if i in self._rows)
            return tree

    async def count_executions(
        self, where: ExecutionFilter, *, by: tuple[CountKey, ...]
    ) -> list[ExecutionCount]:
        with self._lock:
            return count_records((r for r in self._rows.values() if matches(r, where)), by)
