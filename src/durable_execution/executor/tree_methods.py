"""What an operator does to whole trees: :meth:`TreeMethods.retry_execution` and
:meth:`TreeMethods.purge_executions`. Both work from an executor that was never started."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from durable_execution.checks import check_int
from durable_execution.executor.engine import ExecutionEngine
from durable_execution.executor.retention import (
    PurgeResult,
    RetentionSettings,
    cutoff_ms,
    purge_trees,
)
from durable_execution.handle import DurableTaskHandle
from durable_execution.storage.abilities import ExecutionPurge, TreeRetry, require
from durable_execution.storage.protocol import DurableStorage
from durable_execution.storage.records import WorkKind

__all__ = ["MAX_PURGE_LIMIT", "TreeMethods"]

MAX_PURGE_LIMIT = 100_000_000
_RETRY = "retry an execution tree (retry_execution)"
_PURGE = "purge executions (purge_executions, retention)"


class TreeMethods:
    """What :class:`~durable_execution.DurableExecutor` offers on whole trees."""

    storage: DurableStorage
    _clock: Callable[[], int]
    _engine: ExecutionEngine
    _retention_settings: RetentionSettings

    def _ensure_initialized(self) -> Awaitable[None]:
        raise NotImplementedError  # the executor's

    def _check_open(self, action: str) -> None:
        raise NotImplementedError  # the executor's

    async def retry_execution(self, execution_id: str) -> DurableTaskHandle[Any]:
        """Resume a finished, unsuccessful root execution in place, and return its handle.

        What did not complete runs again; what completed keeps its output and is not run
        again; the parents on the way wait for their children again; the id stays the same.
        An execution that runs again counts one more attempt (``retry_attempts``) and keeps
        the previous attempt's ``error`` until it finishes again; its task's retry policy is
        not renewed. The rules, status by status: :mod:`durable_execution.storage.retry_rules`.

        Atomic, and safe against a concurrent retry, cancellation or purge of the same tree
        (one of them goes first, the other sees what it did). Works from any process on the
        storage, on an executor that was never started.

        Raises :class:`~durable_execution.errors.DurableExecutionNotFoundError` for an
        unknown id; :class:`~durable_execution.errors.ExecutionNotRetryableError` (its
        ``reason`` says why) for an execution that is not a root, not finished, completed,
        or whose descendants are still being cancelled; and
        :class:`~durable_execution.errors.UnsupportedByStorageError` on a storage without the
        :class:`~durable_execution.storage.abilities.TreeRetry` ability.
        """
        self._check_open("retry an execution")
        retrier = require(self.storage, TreeRetry, _RETRY)
        await self._ensure_initialized()
        root = await retrier.retry_execution_tree(execution_id, now_ms=self._clock())
        # This executor's loops wake at once (the storage tells other executors).
        self._engine.wake(WorkKind.READY)
        self._engine.wake(WorkKind.ADVANCE)
        return DurableTaskHandle(self, root.task_id, root.execution_id)  # type: ignore[arg-type]

    async def purge_executions(
        self,
        *,
        finished_before: dt.timedelta | dt.datetime,
        limit: int = 10_000,
    ) -> int:
        """Delete the closed trees whose root finished before ``finished_before`` (a
        duration back from now, or a timezone-aware datetime); returns how many trees (root
        executions, each with all its descendants) were deleted, at most ``limit``.

        A tree goes whole or not at all, and only once the root and every descendant are
        finished and closed: a running tree is never touched. Deleting frees idempotency
        keys (a later enqueue with the key creates a new execution). The work is done in
        bounded batches, each a short transaction (see :mod:`.retention`). Works on an
        executor that was never started. An executor that read a purged execution before
        may still answer reads of it from memory, as it was (see
        :mod:`durable_execution.executor.finished`).
        """
        result = await self.purge_executions_in_batches(
            finished_before=finished_before, limit=limit
        )
        return result.trees

    async def purge_executions_in_batches(
        self,
        *,
        finished_before: dt.timedelta | dt.datetime,
        limit: int = 10_000,
        dry_run: bool = False,
    ) -> PurgeResult:
        """:meth:`purge_executions`, telling how many executions and batches it took too;
        ``dry_run`` counts what it would delete and deletes nothing."""
        check_int("limit", limit, minimum=1, maximum=MAX_PURGE_LIMIT)
        purger = require(self.storage, ExecutionPurge, _PURGE)
        before_ms = cutoff_ms(finished_before, self._clock())
        await self._ensure_initialized()
        return await purge_trees(
            purger,
            before_ms=before_ms,
            limit=limit,
            settings=self._retention_settings,
            dry_run=dry_run,
        )
