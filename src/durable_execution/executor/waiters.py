"""Waiting for executions to finish: local notifications, plus one shared poller.

A wait on executions known to be finished (finished here, or seen finished: see
:mod:`durable_execution.executor.finished`) returns at once, without a storage call.
Executions finished by this executor wake their waiters at once. Executions finished elsewhere
(another executor, another process) are found by a single poller that checks all awaited ids
in one storage call per interval, and runs only while someone waits. A new waiter's first check
is batched with the other new waiters' (one storage call however many start waiting at once),
and skipped for executions this executor inserted moments ago: nothing can have finished them
yet, short of another executor racing through them, which the poller catches as it catches
any execution finished elsewhere.

A wait that reads its execution once finished (:meth:`FinishWaiters.wait_and_read`) has the
read made before its caller wakes up: one wake-up per caller, the read shared with every wait
that ended at the same time (see :mod:`durable_execution.executor.reads`), and no read at all
when the final records are known (computed by the executor that completed them, see
:meth:`~durable_execution.executor.engine.ExecutionEngine._wake_for`).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Any

from durable_execution.errors import WaitTimeoutError
from durable_execution.executor.finished import FinishedRecords
from durable_execution.executor.options import LoggerLike
from durable_execution.executor.reads import RecordReads
from durable_execution.storage.protocol import DurableStorage
from durable_execution.storage.records import ExecutionRecord

__all__ = ["FinishWaiters"]

_CHECK_CHUNK = 5_000
_POLL_CHUNK = 1_000
# How long after its insertion a wait on an execution skips the first check (a check of ids
# just inserted finds nothing finished; what it cost is in docs/performance.md).
_FRESH_S = 1.0


class _Wait:
    """One caller's wait: a future resolved once ``remaining`` of ``ids`` are finished (with
    what a read of them found, when ``read``)."""

    __slots__ = ("future", "ids", "read", "remaining")

    def __init__(self, future: asyncio.Future[Any], ids: tuple[str, ...], read: bool) -> None:
        self.future = future
        self.ids = ids
        self.read = read
        self.remaining = len(ids)


class FinishWaiters:
    """Waits keyed by execution id, resolved when their executions are known to be finished.

    A wait on many executions is one future and a countdown, not a future per execution: a
    batch of 5,000 costs one ``set_result``, not 5,000 callbacks through ``gather``.
    """

    def __init__(
        self,
        storage: DurableStorage,
        poll_interval_s: float,
        logger: LoggerLike,
        runs_here: Callable[[str], bool] = lambda _: False,
        finished: FinishedRecords | None = None,
        reads: RecordReads | None = None,
    ) -> None:
        self.finished = finished if finished is not None else FinishedRecords()
        self._reads = reads if reads is not None else RecordReads(storage, self.finished)
        self._runs_here = runs_here  # executions this executor runs: it will tell when done
        self._storage = storage
        self._poll_interval_s = poll_interval_s
        self._logger = logger
        self._waiters: dict[str, list[_Wait]] = {}
        self._unchecked: set[str] = set()
        self._fresh: set[str] = set()  # inserted moments ago by this executor
        self._fresh_batches: deque[tuple[float, Collection[str]]] = deque()
        self._checker: asyncio.Task[None] | None = None
        self._poller: asyncio.Task[None] | None = None

    def notify(self, execution_ids: Iterable[str]) -> None:
        """Wake the waiters of these (now finished) executions. The memory of finished
        executions is not told (it keeps completed ones only, and the caller knows which)."""
        execution_ids = list(execution_ids)
        if self._fresh:  # known finished now, or checked once forgotten: no longer fresh
            self._fresh.difference_update(execution_ids)
        if not self._waiters:
            return
        for execution_id in execution_ids:
            for wait in self._waiters.pop(execution_id, ()):
                wait.remaining -= 1
                if wait.remaining == 0 and not wait.future.done():
                    self._resolve(wait)

    def _resolve(self, wait: _Wait) -> None:
        if not wait.read:
            wait.future.set_result(None)
            return
        get = self.finished.get
        found = {i: record for i in wait.ids if (record := get(i)) is not None}
        if len(found) == len(wait.ids):  # final records known (computed here): no read
            wait.future.set_result(found)
        else:
            self._reads.read_into(wait.ids, wait.future, read_ahead=True)

    def is_read_awaited(self, execution_id: str) -> bool:
        """Whether a wait will read this execution once it is finished."""
        waits = self._waiters.get(execution_id)
        return waits is not None and any(wait.read for wait in waits)

    def recheck(self, execution_id: str) -> None:
        """Check this execution in storage if someone waits for it: its run here ended
        without recording an outcome, so no local notification will come."""
        if execution_id in self._waiters:
            self._unchecked.add(execution_id)
            self._start_checker()

    def inserted(self, execution_ids: Collection[str]) -> None:
        """These executions were just inserted by this executor (not found existing by an
        idempotency key): a wait that starts on them within ``_FRESH_S`` skips the first
        check, unless this executor has finished them meanwhile (see :meth:`notify`).
        """
        now = time.monotonic()
        self._forget_fresh(now)
        if execution_ids:
            self._fresh.update(execution_ids)
            self._fresh_batches.append((now, execution_ids))

    def _forget_fresh(self, now: float) -> None:
        batches = self._fresh_batches
        while batches and now - batches[0][0] > _FRESH_S:
            self._fresh.difference_update(batches.popleft()[1])

    def pending_ids(self) -> set[str]:
        """The ids someone waits for."""
        return set(self._waiters)

    async def wait(self, execution_ids: Collection[str], timeout_s: float | None) -> None:
        """Return once every execution is finished; :class:`WaitTimeoutError` (a
        :class:`TimeoutError`) after ``timeout_s``."""
        wait = self._register(execution_ids, read=False)
        if wait is not None:
            await self._wait(wait, timeout_s, len(set(execution_ids)))

    def wait_and_read(
        self, execution_id: str, timeout_s: float | None
    ) -> Awaitable[dict[str, ExecutionRecord]]:
        """Wait like :meth:`wait`, then read the execution: its record by its id (none when
        there is no such execution). The timeout bounds the wait, not the read.

        Not a coroutine function, to spare each waiting caller one more coroutine."""
        wait = self._register((execution_id,), read=True)
        if wait is None:
            return self._reads.read((execution_id,), read_ahead=True)
        return self._wait(wait, timeout_s, 1)

    async def _wait(self, wait: _Wait, timeout_s: float | None, total: int) -> Any:
        try:
            if timeout_s is None:
                return await wait.future
            return await asyncio.wait_for(wait.future, timeout_s)
        except TimeoutError:
            if wait.read and not wait.remaining:  # finished in time; its read was not
                return await self._reads.read(wait.ids, read_ahead=True)
            raise WaitTimeoutError(
                f"{wait.remaining} of {total} execution(s) not finished after {timeout_s} s"
            ) from None
        finally:
            if wait.remaining:  # timed out or cancelled: forget this wait
                self._forget(wait)

    def _register(self, execution_ids: Collection[str], *, read: bool) -> _Wait | None:
        """A wait on those of ``execution_ids`` not known finished (``None``: none), with
        their first check and the poller started."""
        is_finished = self.finished.is_finished
        if len(execution_ids) == 1:  # a handle's wait, the most common: kept lean
            ids: tuple[str, ...] = tuple(execution_ids)
            if is_finished(ids[0]):
                return None
        else:
            ids = tuple({i: None for i in execution_ids if not is_finished(i)})
            if not ids:
                return None
        wait = _Wait(asyncio.get_running_loop().create_future(), ids, read)
        waiters = self._waiters
        for execution_id in ids:
            waits = waiters.get(execution_id)
            if waits is None:
                waiters[execution_id] = [wait]
            else:
                waits.append(wait)
        self._forget_fresh(time.monotonic())
        fresh = self._fresh
        unchecked = [i for i in ids if i not in fresh] if fresh else ids
        if unchecked:
            self._unchecked.update(unchecked)
            self._start_checker()
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll())
        return wait

    def _forget(self, wait: _Wait) -> None:
        for execution_id in wait.ids:
            waits = self._waiters.get(execution_id)
            if waits is not None and wait in waits:
                waits.remove(wait)
                if not waits:
                    del self._waiters[execution_id]

    def _start_checker(self) -> None:
        if self._unchecked and (self._checker is None or self._checker.done()):
            self._checker = asyncio.create_task(self._first_check())

    async def _first_check(self) -> None:
        await asyncio.sleep(0)  # gather every waiter that starts in this turn of the loop
        while self._unchecked:
            # Take them all at once: filtering the whole set again for each chunk would cost
            # quadratic time on a wait for many executions.
            ids = [i for i in self._unchecked if i in self._waiters]
            self._unchecked.clear()
            for start in range(0, len(ids), _CHECK_CHUNK):
                await self._check(ids[start : start + _CHECK_CHUNK])

    async def _poll(self) -> None:
        """Check awaited ids for executions finished elsewhere: a slice of them per interval,
        in rotation, so the cost per interval stays bounded however many wait."""
        rotation = 0
        while self._waiters:
            await asyncio.sleep(self._poll_interval_s)
            ids = list(self._waiters)
            if rotation >= len(ids):
                rotation = 0
            await self._check(ids[rotation : rotation + _POLL_CHUNK])
            rotation += _POLL_CHUNK

    async def _check(self, ids: list[str]) -> None:
        ids = [i for i in ids if not self._runs_here(i)]
        if not ids:
            return
        try:
            finished = await self._storage.find_finished(ids)
        except Exception:  # the poller keeps trying; a long wait outlives a storage blip
            self._logger.warning("checking %d awaited executions failed", len(ids), exc_info=True)
            return
        self.notify(finished)
