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

A wait that reads its execution once finished (:meth:`FinishWaiters.deliver`) has the
read made before its caller wakes up: one wake-up per caller, the read shared with every wait
that ended at the same time (see :mod:`durable_execution.executor.reads`), and no read at all
when the final records are known (computed by the executor that completed them, see
:meth:`~durable_execution.executor.engine.ExecutionEngine._wake_for`).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping

from durable_execution.errors import WaitTimeoutError
from durable_execution.executor.finished import FinishedRecords
from durable_execution.executor.options import LoggerLike
from durable_execution.executor.reads import ReadCaller, RecordReads
from durable_execution.storage.protocol import DurableStorage
from durable_execution.storage.records import ExecutionRecord

__all__ = ["FinishWaiters", "Wait"]

_CHECK_CHUNK = 5_000
_POLL_CHUNK = 1_000
# How long after its insertion a wait on an execution skips the first check (a check of ids
# just inserted finds nothing finished; what it cost is in docs/performance.md).
_FRESH_S = 1.0


class Wait:
    """One caller's wait: ``caller`` resolved once ``remaining`` of ``ids`` are finished (with
    what a read of them found, when ``read``; else with ``None``). ``records``, when given,
    collects the final records computed by this executor as its executions finish (see
    :meth:`FinishWaiters.notify`)."""

    __slots__ = ("caller", "ids", "read", "records", "remaining")

    def __init__(
        self,
        caller: ReadCaller,
        ids: tuple[str, ...],
        read: bool,
        records: dict[str, ExecutionRecord] | None = None,
    ) -> None:
        self.caller = caller
        self.ids = ids
        self.read = read
        self.records = records
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
        self._waiters: dict[str, list[Wait]] = {}
        self._unchecked: set[str] = set()
        self._fresh: set[str] = set()  # inserted moments ago by this executor
        self._fresh_batches: deque[tuple[float, Collection[str]]] = deque()
        self._checker: asyncio.Task[None] | None = None
        self._poller: asyncio.Task[None] | None = None

    def notify(
        self,
        execution_ids: Iterable[str],
        computed: Mapping[str, ExecutionRecord] | None = None,
    ) -> None:
        """Wake the waiters of these (now finished) executions; ``computed``: the final
        records of some of them, as this executor computed them, for the waits collecting
        records. The memory of finished executions is not told (it keeps completed ones
        only, and the caller knows which)."""
        execution_ids = list(execution_ids)
        if self._fresh:  # known finished now, or checked once forgotten: no longer fresh
            self._fresh.difference_update(execution_ids)
        if not self._waiters:
            return
        for execution_id in execution_ids:
            for wait in self._waiters.pop(execution_id, ()):
                if wait.records is not None and computed:
                    record = computed.get(execution_id)
                    if record is not None:
                        wait.records[execution_id] = record
                wait.remaining -= 1
                if wait.remaining == 0 and not wait.caller.done():
                    self._resolve(wait)

    def _resolve(self, wait: Wait) -> None:
        if not wait.read:
            wait.caller.set_result(None)
            return
        get = self.finished.get
        found = {i: record for i in wait.ids if (record := get(i)) is not None}
        if len(found) == len(wait.ids):  # final records known (computed here): no read
            wait.caller.set_result(found)
        else:
            self._reads.read_into(wait.ids, wait.caller, read_ahead=True)

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

    async def wait(
        self,
        execution_ids: Collection[str],
        timeout_s: float | None,
        records: dict[str, ExecutionRecord] | None = None,
    ) -> None:
        """Return once every execution is finished; :class:`WaitTimeoutError` (a
        :class:`TimeoutError`) after ``timeout_s``. ``records``: filled with the final records
        this executor computes of them as they finish (see :meth:`notify`; the others are
        for the caller to read)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        wait = self._register(execution_ids, future, read=False, records=records)
        if wait is None:
            return
        try:
            if timeout_s is None:
                await future
            else:
                await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            total = len(set(execution_ids))
            raise WaitTimeoutError(
                f"{wait.remaining} of {total} execution(s) not finished after {timeout_s} s"
            ) from None
        finally:
            if wait.remaining:  # timed out or cancelled: forget this wait
                self.forget(wait)

    def deliver(self, execution_id: str, caller: ReadCaller) -> Wait | None:
        """Resolve ``caller`` with what a read finds of this execution (by id; nothing when
        there is no such execution) once it is finished: from the final records when known,
        else from the next shared read. Returns the wait registered (``None`` when none was
        needed: the read is on the way), for :meth:`forget` and :meth:`has_ended`.

        A caller done (cancelled) before then is dropped at the waiters' next look at it."""
        wait = self._register((execution_id,), caller, read=True)
        if wait is None:
            self._reads.read_into((execution_id,), caller, read_ahead=True)
        return wait

    @staticmethod
    def has_ended(wait: Wait) -> bool:
        """Whether every execution of ``wait`` is known finished (its caller resolved, or
        its read on the way)."""
        return wait.remaining == 0

    def _register(
        self,
        execution_ids: Collection[str],
        caller: ReadCaller,
        *,
        read: bool,
        records: dict[str, ExecutionRecord] | None = None,
    ) -> Wait | None:
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
        wait = Wait(caller, ids, read, records)
        waiters = self._waiters
        for execution_id in ids:
            waits = waiters.get(execution_id)
            if waits is None:
                waiters[execution_id] = [wait]
            else:
                waits.append(wait)
        self._check_first(ids)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll())
        return wait

    def _check_first(self, ids: tuple[str, ...]) -> None:
        """Have the first check ask about those of ``ids`` not inserted here moments ago."""
        if self._fresh_batches:
            self._forget_fresh(time.monotonic())
        fresh = self._fresh
        if not fresh:
            unchecked: Collection[str] = ids
        elif len(ids) == 1:  # no comprehension: a function call of its own before 3.12
            unchecked = () if ids[0] in fresh else ids
        else:
            unchecked = [i for i in ids if i not in fresh]
        if unchecked:
            self._unchecked.update(unchecked)
            self._start_checker()

    def forget(self, wait: Wait) -> None:
        """Drop ``wait`` (timed out, cancelled): its caller will not be resolved."""
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

    def _drop_abandoned(self, ids: list[str]) -> list[str]:
        """Drop the waits of these ids whose callers are done (cancelled, nobody awaits
        them any more); the ids someone still waits for."""
        waiters, live_ids = self._waiters, []
        for execution_id in ids:
            waits = waiters.get(execution_id)
            if waits is None:
                continue
            if any(wait.caller.done() for wait in waits):
                waits = [wait for wait in waits if not wait.caller.done()]
                if not waits:
                    del waiters[execution_id]
                    continue
                waiters[execution_id] = waits
            live_ids.append(execution_id)
        return live_ids

    async def _check(self, ids: list[str]) -> None:
        ids = [i for i in self._drop_abandoned(ids) if not self._runs_here(i)]
        if not ids:
            return
        try:
            finished = await self._storage.find_finished(ids)
        except Exception:  # the poller keeps trying; a long wait outlives a storage blip
            self._logger.warning("checking %d awaited executions failed", len(ids), exc_info=True)
            return
        self.notify(finished)
