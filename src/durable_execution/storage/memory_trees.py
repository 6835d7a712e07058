"""The in-memory storage's operations on whole trees: an operator's retry (the
:class:`~durable_execution.storage.abilities.TreeRetry` ability) and purging (the
:class:`~durable_execution.storage.abilities.ExecutionPurge` ability), mixed into
:class:`~durable_execution.storage.memory.InMemoryStorage`. Each runs under the storage's
one lock: nothing else changes the tree meanwhile."""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterator
from contextlib import AbstractContextManager

from durable_execution.errors import (
    DuplicateUniqueIdError,
    DurableExecutionNotFoundError,
)
from durable_execution.ids import execution_id_floor
from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.records import CloseState, ExecutionRecord, PurgeBatch, WorkKind
from durable_execution.storage.retry_rules import check_retryable, reopen_tree

__all__ = ["MemoryTrees"]


def _is_final(record: ExecutionRecord) -> bool:
    return (
        record.is_finished and record.close_state is CloseState.CLOSED and not record.stop_requested
    )


class MemoryTrees:
    """Retry and purge over the storage's rows and indexes."""

    _rows: dict[str, ExecutionRecord]
    _children: dict[str, list[str]]
    _by_key: dict[str, str]
    _by_unique_id: dict[tuple[str, str], str]
    _sleeping: list[tuple[int, str]]
    _queue_version: dict[str, int]

    def _transaction(self) -> AbstractContextManager[set[WorkKind]]:
        raise NotImplementedError  # pragma: no cover - InMemoryStorage's

    def _enqueue_ready(self, record: ExecutionRecord, now_ms: int) -> None:
        raise NotImplementedError  # pragma: no cover - InMemoryStorage's

    def _after_change(self, record: ExecutionRecord, kinds: set[WorkKind]) -> None:
        raise NotImplementedError  # pragma: no cover - InMemoryStorage's

    def _with_children(self, record: ExecutionRecord) -> ExecutionRecord:
        raise NotImplementedError  # pragma: no cover - InMemoryStorage's

    def _descendants(self, execution_id: str) -> Iterator[ExecutionRecord]:
        """Every execution under ``execution_id`` (children and completion tasks)."""
        pending = [execution_id]
        while pending:
            record = self._rows[pending.pop()]
            below = list(self._children.get(record.execution_id, ()))
            if record.completion_execution_id is not None:
                below.append(record.completion_execution_id)
            for child_id in below:
                if child_id in self._rows:
                    yield self._rows[child_id]
                    pending.append(child_id)

    # -- abilities.TreeRetry -----------------------------------------------------------------

    async def retry_execution_tree(self, execution_id: str, *, now_ms: int) -> ExecutionRecord:
        with self._transaction() as kinds:
            root = self._rows.get(execution_id)
            if root is None:
                raise DurableExecutionNotFoundError(f"No execution {execution_id} was found")
            tree = [root, *self._descendants(execution_id)]
            check_retryable(root, tree)
            # Worked on copies, stored only once nothing can fail any more.
            changed = reopen_tree([record.copy() for record in tree], execution_id, now_ms)
            self._check_unique_ids_free(changed)
            for record in changed:
                self._rows[record.execution_id] = record
                if record.status is S.READY:
                    self._enqueue_ready(record, now_ms)
                    kinds.add(WorkKind.READY)
                elif record.status is S.SLEEPING:
                    key = (record.task_id, record.unique_id or "")
                    self._by_unique_id[key] = record.execution_id
                    heapq.heappush(self._sleeping, (record.expires_at_ms or 0, record.execution_id))
                self._after_change(record, kinds)
            return self._with_children(self._rows[execution_id])

    def _check_unique_ids_free(self, changed: list[ExecutionRecord]) -> None:
        for record in changed:
            if record.status is not S.SLEEPING:
                continue
            holder = self._by_unique_id.get((record.task_id, record.unique_id or ""))
            if (
                holder is not None
                and holder != record.execution_id
                and self._rows[holder].status is S.SLEEPING
            ):
                raise DuplicateUniqueIdError(
                    f"Cannot retry: sleeping task {record.task_id} already has an execution "
                    f"({holder}) sleeping with the unique id {record.unique_id!r}"
                )

    # -- abilities.ExecutionPurge ------------------------------------------------------------

    async def purge_closed_trees(
        self,
        *,
        finished_before_ms: int,
        after_execution_id: str,
        scan_limit: int,
        max_trees: int,
        dry_run: bool = False,
    ) -> PurgeBatch:
        with self._transaction():
            ids = sorted(self._rows)  # the primary key's order
            start = bisect.bisect_right(ids, after_execution_id)
            end = min(
                bisect.bisect_left(ids, execution_id_floor(finished_before_ms)),
                start + scan_limit,
            )
            scanned = ids[start:end]
            roots: list[ExecutionRecord] = []
            next_after: str | None = scanned[-1] if end - start == scan_limit else None
            for execution_id in scanned:
                record = self._rows[execution_id]
                if (
                    record.parent_execution_id is None
                    and _is_final(record)
                    and record.finished_at_ms is not None
                    and record.finished_at_ms < finished_before_ms
                ):
                    roots.append(record)
                    if len(roots) == max_trees:
                        next_after = execution_id
                        break
            trees = executions = 0
            for root in roots:
                tree = [root, *self._descendants(root.execution_id)]
                if not all(_is_final(record) for record in tree):
                    continue
                trees += 1
                executions += len(tree)
                if not dry_run:
                    for record in tree:
                        self._delete(record)
            return PurgeBatch(trees=trees, executions=executions, next_after=next_after)

    def _delete(self, record: ExecutionRecord) -> None:
        execution_id = record.execution_id
        del self._rows[execution_id]
        self._children.pop(execution_id, None)
        self._queue_version.pop(execution_id, None)
        if record.idempotency_key is not None and self._by_key.get(record.idempotency_key) == (
            execution_id
        ):
            del self._by_key[record.idempotency_key]
        if record.unique_id is not None:
            key = (record.task_id, record.unique_id)
            if self._by_unique_id.get(key) == execution_id:
                del self._by_unique_id[key]
