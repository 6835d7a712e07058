"""Batching outcome writes: many finishing runs, one storage round trip."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence

from durable_execution.errors import DuplicateUniqueIdError
from durable_execution.executor.options import LoggerLike
from durable_execution.executor.sleeping import duplicate_child_outcome
from durable_execution.storage.abilities import StampedWrites
from durable_execution.storage.protocol import DurableStorage
from durable_execution.storage.records import ExecutionOutcome

__all__ = ["OutcomeWriter"]

_MAX_BATCH = 500

# done(written_at_ms, stamped_at_ms): the ``now_ms`` of the write that applied the outcome
# (``None`` when none did), and the time the storage stamped it with when it tells
# (:class:`~durable_execution.storage.abilities.StampedWrites`), else ``None``.
Done = Callable[[int | None, int | None], None]
_Pending = tuple[ExecutionOutcome, Callable[[], int], Done]
# A write's result for one outcome: (written_at_ms, stamped_at_ms), ``None`` when not applied.
_Written = tuple[int, int | None] | None
_RETRY_DELAYS_S = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0)


class OutcomeWriter:
    """Collects outcomes and records them in batches with :meth:`DurableStorage.record_outcomes`.

    While one batch is being written, new outcomes queue up and go in the next one, so the
    batch size follows the load. A failed write is retried until the outcome's deadline (the
    end of its lease, which heartbeats may push back while the write is retried): past it,
    another executor may already own the execution, and the outcome is dropped (the run will
    be repeated, never recorded twice).
    """

    def __init__(
        self,
        storage: DurableStorage,
        clock: Callable[[], int],
        on_written: Callable[[Sequence[ExecutionOutcome]], None],
        logger: LoggerLike,
    ) -> None:
        self._storage = storage
        self._stamped = storage if isinstance(storage, StampedWrites) else None
        self._clock = clock
        self._on_written = on_written
        self._logger = logger
        self._pending: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None

    def submit_nowait(
        self,
        outcome: ExecutionOutcome,
        deadline: Callable[[], int],
        done: Done,
    ) -> None:
        """Queue ``outcome``; ``done(written_at_ms, stamped_at_ms)`` is called once it is
        written (with the ``now_ms`` the write passed to the storage, and the time the
        storage stamped it with when the storage tells it) or given up (with ``None``,
        ``None``).

        ``deadline()`` is the end of the claim's lease as it stands (read again before each
        retry: a renewed lease moves it)."""
        self._pending.append((outcome, deadline, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_all())

    async def submit(self, outcome: ExecutionOutcome, deadline_ms: int) -> int | None:
        """Record ``outcome``; returns the ``now_ms`` of the write that applied it, ``None``
        when it did not apply (the claim was lost)."""
        future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()

        def done(written_at_ms: int | None, _: int | None) -> None:
            if not future.done():
                future.set_result(written_at_ms)

        self.submit_nowait(outcome, lambda: deadline_ms, done)
        return await future

    async def drain(self) -> None:
        """Wait until everything submitted so far is written (or given up)."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)

    async def _flush_all(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:_MAX_BATCH], self._pending[_MAX_BATCH:]
            applied = await self._write(batch)
            for (_, _, done), at in zip(batch, applied, strict=True):
                try:
                    if at is None:
                        done(None, None)
                    else:
                        done(*at)
                except Exception:  # a callback must not stop the writer
                    self._logger.exception("an outcome callback failed")
            written = [o for (o, _, _), at in zip(batch, applied, strict=True) if at is not None]
            if written:
                try:
                    self._on_written(written)
                except Exception:  # nor may this: the outcomes queued behind would wait
                    self._logger.exception("telling %d written outcome(s) failed", len(written))

    async def _record(self, outcomes: list[ExecutionOutcome]) -> list[_Written]:
        """One ``record_outcomes`` call, at the clock's time now."""
        now = self._clock()
        if self._stamped is not None:
            stamps = await self._stamped.record_outcomes_stamped(outcomes, now)
            return [None if at is None else (now, at) for at in stamps]
        applied = await self._storage.record_outcomes(outcomes, now)
        return [(now, None) if ok else None for ok in applied]

    async def _write(self, batch: list[_Pending]) -> list[_Written]:
        """Write a batch; after a failure, write its outcomes one by one so that one bad
        outcome cannot hold the others back, each retried until its deadline. Returns, for
        each, the ``now_ms`` of the write that applied it and the storage's stamp (see
        :data:`Done`), ``None`` when none did."""
        try:
            return await self._record([o for o, _, _ in batch])
        except Exception:
            self._logger.exception("recording %d outcome(s) failed", len(batch))
        if len(batch) > 1:
            return [(await self._write_one(item)) for item in batch]
        return [await self._write_one(batch[0], failed_once=True)]

    async def _write_one(
        self,
        item: _Pending,
        *,
        failed_once: bool = False,
    ) -> _Written:
        outcome, deadline, _ = item
        for attempt in itertools.count():
            if failed_once or attempt > 0:
                if self._clock() >= deadline():
                    self._logger.error(
                        "giving up recording the outcome of %s: its lease ended",
                        outcome.execution_id,
                    )
                    return None
                await asyncio.sleep(_RETRY_DELAYS_S[min(attempt, len(_RETRY_DELAYS_S) - 1)])
            try:
                (applied,) = await self._record([outcome])
            except DuplicateUniqueIdError as exc:
                if outcome is not item[0]:
                    raise AssertionError("a failed outcome inserts no child") from exc
                # A sleeping child's unique id is taken: retrying cannot help, the parent
                # fails instead (non-retryable). Its run is reported as not recorded, so that
                # nothing it inserted is started and its waiters read the storage.
                self._logger.warning("%s", exc)
                outcome = duplicate_child_outcome(outcome, exc)
                failed_once = False
                continue
            except Exception:
                self._logger.exception("recording the outcome of %s failed", outcome.execution_id)
                continue
            return applied if outcome is item[0] else None
        raise AssertionError("unreachable")  # pragma: no cover
