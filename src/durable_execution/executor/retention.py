"""Purging old executions: whole closed trees, in bounded batches; and the background loop of
``DurableExecutor(retention=...)``.

A purge is a run of batches (:meth:`~durable_execution.storage.abilities.ExecutionPurge.
purge_closed_trees`), each one short transaction that scans at most ``scan_rows`` executions
and deletes at most ``batch_trees`` trees, the next starting where the last stopped, until
the scan reaches the executions too young to qualify or ``limit`` trees are gone.

With ``retention`` set, an executor runs a purge of what finished more than ``retention``
ago every ``interval_ms``, pausing ``pause_ms`` between batches so that it never hogs the
storage. On a storage with a worker registry only the *leader* purges (the live worker that
started first, as for the unserved-work report: see :mod:`.presence`), so a fleet purges on
one executor at a time; without one, each executor purges (batches of concurrent purges
never delete part of a tree, they only repeat each other's scans).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from durable_execution.executor.loop import BackgroundLoop
from durable_execution.executor.options import LoggerLike
from durable_execution.storage.abilities import ExecutionPurge, WorkerRegistry

__all__ = ["PurgeResult", "RetentionLoop", "RetentionSettings", "cutoff_ms", "purge_trees"]


@dataclass(frozen=True, slots=True)
class RetentionSettings:
    """How purges go, in batches (see the module docstring)."""

    interval_ms: int = 60_000
    """How often the retention loop purges."""
    batch_trees: int = 500
    """Trees deleted per batch, at most."""
    scan_rows: int = 5_000
    """Executions scanned per batch, at most (roots and descendants alike)."""
    pause_ms: int = 50
    """The pause between two batches of the retention loop."""
    max_trees_per_run: int = 100_000
    """Trees one run of the retention loop deletes, at most (the next run goes on)."""
    alive_within_ms: int = 30_000
    """A worker whose heartbeat is older is not counted when choosing the leader."""


@dataclass(frozen=True, slots=True)
class PurgeResult:
    """What a purge deleted (or, for a dry run, would delete)."""

    trees: int
    """Root executions deleted, each with its whole tree."""
    executions: int
    """Executions deleted in all, the roots included."""
    batches: int
    """Batches (short transactions) it took."""


def cutoff_ms(finished_before: dt.timedelta | dt.datetime, now_ms: int) -> int:
    """``finished_before`` as milliseconds since the epoch: a duration counts back from
    ``now_ms``; a datetime must be timezone-aware. Raises ``ValueError`` otherwise."""
    if isinstance(finished_before, dt.timedelta):
        if finished_before < dt.timedelta(0):
            raise ValueError(f"Invalid finished_before={finished_before!r}: a negative duration")
        return now_ms - int(finished_before / dt.timedelta(milliseconds=1))
    if isinstance(finished_before, dt.datetime):
        if finished_before.tzinfo is None:
            raise ValueError(
                f"Invalid finished_before={finished_before!r}: give a timezone-aware datetime "
                "(such as datetime.now(timezone.utc) - timedelta(days=30))"
            )
        return int(finished_before.timestamp() * 1000)
    raise ValueError(
        f"Invalid finished_before={finished_before!r}: expected a timedelta or a datetime"
    )


async def purge_trees(
    purger: ExecutionPurge,
    *,
    before_ms: int,
    limit: int,
    settings: RetentionSettings,
    dry_run: bool = False,
    pause_s: float = 0.0,
) -> PurgeResult:
    """Purge closed trees finished before ``before_ms``, at most ``limit`` of them, batch
    after batch (``pause_s`` between two)."""
    trees = executions = batches = 0
    after = ""
    while trees < limit:
        batch = await purger.purge_closed_trees(
            finished_before_ms=before_ms,
            after_execution_id=after,
            scan_limit=settings.scan_rows,
            max_trees=min(settings.batch_trees, limit - trees),
            dry_run=dry_run,
        )
        batches += 1
        trees += batch.trees
        executions += batch.executions
        if batch.next_after is None:
            break
        after = batch.next_after
        if pause_s > 0:
            await asyncio.sleep(pause_s)
    return PurgeResult(trees=trees, executions=executions, batches=batches)


class RetentionLoop:
    """The background purge of one executor (see the module docstring)."""

    def __init__(
        self,
        *,
        storage: ExecutionPurge,
        executor_id: str,
        retention: dt.timedelta,
        clock: Callable[[], int],
        logger: LoggerLike,
        settings: RetentionSettings,
    ) -> None:
        self._storage = storage
        self._registry = storage if isinstance(storage, WorkerRegistry) else None
        self._executor_id = executor_id
        self._retention = retention
        self._clock = clock
        self._logger = logger
        self._settings = settings
        self._loop = BackgroundLoop("retention", self._step, settings.interval_ms / 1000, logger)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def _leads(self, now: int) -> bool:
        if self._registry is None:
            return True
        workers = await self._registry.list_workers(
            now_ms=now, alive_within_ms=self._settings.alive_within_ms
        )
        return bool(workers) and workers[0].executor_id == self._executor_id

    async def _step(self) -> bool:
        now = self._clock()
        if not await self._leads(now):
            return False
        before_ms = cutoff_ms(self._retention, now)
        settings = self._settings
        result = await purge_trees(
            self._storage,
            before_ms=before_ms,
            limit=settings.max_trees_per_run,
            settings=settings,
            pause_s=settings.pause_ms / 1000,
        )
        if result.trees:
            before = dt.datetime.fromtimestamp(before_ms / 1000, tz=dt.UTC)
            self._logger.info(
                "retention: purged %d execution tree(s) (%d executions) finished before %s, "
                "in %d batch(es)",
                result.trees,
                result.executions,
                before.isoformat(timespec="seconds"),
                result.batches,
            )
        return False
