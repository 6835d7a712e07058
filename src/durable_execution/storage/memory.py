"""In-memory storage: the whole contract, in one process, for tests and ephemeral work.

Nothing survives the process; everything else behaves as the durable backends do, including
fencing, leases, idempotency keys and concurrent use by several executors (even from several
threads: one lock guards the state). Claims use heaps, so they stay fast with many rows.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager

from durable_execution.errors import (
    DuplicateExecutionError,
    DuplicateUniqueIdError,
    DurableExecutionErrorInfo,
)
from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.caller_stamps import CallerStamps
from durable_execution.storage.int_range import (
    check_lease,
    check_leases,
    check_new_executions,
    check_outcomes,
)
from durable_execution.storage.listeners import WakeUpListeners
from durable_execution.storage.memory_queries import MemoryExecutionQueries
from durable_execution.storage.memory_trees import MemoryTrees
from durable_execution.storage.memory_workers import MemoryWorkerRegistry
from durable_execution.storage.records import (
    ChildResult,
    CloseResult,
    CloseState,
    ExecutionOutcome,
    ExecutionRecord,
    NewExecution,
    ParentToAdvance,
    WorkKind,
)
from durable_execution.storage.transitions import (
    apply_close,
    apply_expiry,
    apply_outcome,
    apply_outcome_close,
    apply_sleep_timeout,
    apply_successor,
    apply_wakeup,
    cancel_record,
    cancelled_child_error,
    check_wakeup_status,
    claim_times,
    is_advanceable,
    is_suspect,
    new_record,
    outcome_applies,
    renewal_applies,
    renewed_expiry,
    wakeup_applies,
)

__all__ = ["InMemoryStorage"]


class _ReadyQueue:
    """Ready executions of one task: a heap of due ones and a heap of delayed ones.

    Entries are invalidated lazily: an entry counts only while its ``version`` is the one
    recorded for its execution (any re-queue or claim bumps the version).
    """

    __slots__ = ("delayed", "due")

    def __init__(self) -> None:
        self.due: list[tuple[int, int, str, int]] = []  # (-priority, start_at, id, version)
        self.delayed: list[tuple[int, int, str, int]] = []  # (start_at, -priority, id, version)

    def push(self, record: ExecutionRecord, version: int, now_ms: int) -> None:
        if record.start_at_ms <= now_ms:
            entry = (-record.priority, record.start_at_ms, record.execution_id, version)
            heapq.heappush(self.due, entry)
        else:
            entry = (record.start_at_ms, -record.priority, record.execution_id, version)
            heapq.heappush(self.delayed, entry)

    def promote(self, now_ms: int) -> None:
        while self.delayed and self.delayed[0][0] <= now_ms:
            start_at, neg_priority, execution_id, version = heapq.heappop(self.delayed)
            heapq.heappush(self.due, (neg_priority, start_at, execution_id, version))


class InMemoryStorage(MemoryWorkerRegistry, MemoryExecutionQueries, MemoryTrees, CallerStamps):
    """A complete :class:`~durable_execution.storage.DurableStorage` held in memory, with the
    :class:`~durable_execution.storage.abilities.WorkerRegistry`,
    :class:`~durable_execution.storage.abilities.SleepingExecutions`,
    :class:`~durable_execution.storage.abilities.ExecutionQueries`,
    :class:`~durable_execution.storage.abilities.TreeRetry`,
    :class:`~durable_execution.storage.abilities.ExecutionPurge`,
    :class:`~durable_execution.storage.abilities.CallerClock` and
    :class:`~durable_execution.storage.abilities.StampedWrites` abilities."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._rows: dict[str, ExecutionRecord] = {}
        self._children: dict[str, list[str]] = {}
        self._by_key: dict[str, str] = {}
        self._queues: dict[str, _ReadyQueue] = {}
        self._queue_version: dict[str, int] = {}
        self._advanceable: set[str] = set()
        self._to_close: dict[str, None] = {}
        self._running: list[tuple[int, str, int]] = []  # (expires_at, id, lease_token)
        self._cancellations: dict[str, dict[str, None]] = {}
        # Sleeping executions: the latest execution of each (task id, unique id), and the
        # deadlines of the sleeping ones (stale entries skipped when popped).
        self._by_unique_id: dict[tuple[str, str], str] = {}
        self._sleeping: list[tuple[int, str]] = []  # (expires_at, id)
        self._listeners = WakeUpListeners()

    # -- lifecycle ---------------------------------------------------------------------------

    async def initialize(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def add_wakeup_listener(self, listener: Callable[[WorkKind], None]) -> Callable[[], None]:
        return self._listeners.add(listener)

    @contextmanager
    def _transaction(self) -> Iterator[set[WorkKind]]:
        """Hold the lock; notify the listeners of the work created, once the lock is released."""
        kinds: set[WorkKind] = set()
        with self._lock:
            yield kinds
        self._listeners.notify(kinds)

    # -- index maintenance -------------------------------------------------------------------

    def _enqueue_ready(self, record: ExecutionRecord, now_ms: int) -> None:
        version = self._queue_version.get(record.execution_id, 0) + 1
        self._queue_version[record.execution_id] = version
        queue = self._queues.get(record.task_id)
        if queue is None:
            queue = self._queues[record.task_id] = _ReadyQueue()
        queue.push(record, version, now_ms)

    def _after_change(self, record: ExecutionRecord, kinds: set[WorkKind]) -> None:
        """Keep the secondary indexes in step with ``record``'s new state: one index per kind
        of work (:func:`~durable_execution.storage.transitions.work_created`; the ready queues
        are kept by whoever makes an execution ready), written out on this hot path."""
        execution_id = record.execution_id
        if record.close_state is CloseState.READY:
            self._to_close[execution_id] = None
            kinds.add(WorkKind.CLOSE)
        if is_advanceable(record.status, record.unfinished_children, record.failed_children):
            self._advanceable.add(execution_id)
            kinds.add(WorkKind.ADVANCE)
        else:
            self._advanceable.discard(execution_id)
        if record.stop_requested and record.executor_id is not None:
            self._cancellations.setdefault(record.executor_id, {})[execution_id] = None
            kinds.add(WorkKind.CANCEL)

    def _insert(self, new: NewExecution, now_ms: int, kinds: set[WorkKind]) -> None:
        record = new_record(new, now_ms)
        self._rows[new.execution_id] = record
        if new.idempotency_key is not None:
            self._by_key[new.idempotency_key] = new.execution_id
        if new.parent_execution_id is not None and not new.is_completion:
            self._children.setdefault(new.parent_execution_id, []).append(new.execution_id)
        if record.status is S.RUNNING:  # inserted claimed
            heapq.heappush(
                self._running, (record.expires_at_ms or 0, record.execution_id, record.lease_token)
            )
            return
        if record.status is S.SLEEPING:
            self._by_unique_id[(record.task_id, new.unique_id or "")] = record.execution_id
            heapq.heappush(self._sleeping, (record.expires_at_ms or 0, record.execution_id))
            return
        self._enqueue_ready(record, now_ms)
        kinds.add(WorkKind.READY)

    # -- operations --------------------------------------------------------------------------

    async def insert_executions(self, executions: Sequence[NewExecution], now_ms: int) -> list[str]:
        check_new_executions(executions, now_ms)
        with self._transaction() as kinds:
            ids: list[str] = []
            fresh: list[NewExecution] = []
            batch_keys: dict[str, str] = {}
            for new in executions:
                key = new.idempotency_key
                existing = None if key is None else self._by_key.get(key, batch_keys.get(key))
                if existing is not None:
                    ids.append(existing)
                    continue
                if key is not None:
                    batch_keys[key] = new.execution_id
                fresh.append(new)
                ids.append(new.execution_id)
            # Keys first: an execution whose key is stored is not inserted, so its id (the
            # stored one's, when an enqueue is sent again) is no duplicate.
            self._check_new_ids(fresh)
            for new in fresh:
                self._insert(new, now_ms, kinds)
            return ids

    async def claim_ready_executions(
        self,
        *,
        executor_id: str,
        lease_ms_by_task: Mapping[str, int],
        now_ms: int,
        limit: int,
        lease_ms: int | None = None,
        max_suspects: int | None = None,
    ) -> list[ExecutionRecord]:
        check_leases(now_ms, lease_ms_by_task)
        with self._transaction():
            heads: list[tuple[tuple[int, int, str, int], str]] = []
            # Only queues that hold something are kept: look at the fewer of the two sides.
            if len(self._queues) < len(lease_ms_by_task):
                task_ids = [t for t in self._queues if t in lease_ms_by_task]
            else:
                task_ids = [t for t in lease_ms_by_task if t in self._queues]
            for task_id in task_ids:
                queue = self._queues[task_id]
                queue.promote(now_ms)
                entry = self._valid_head(queue, now_ms)
                if entry is not None:
                    heads.append((entry, task_id))
                elif not queue.delayed:
                    del self._queues[task_id]
            heapq.heapify(heads)
            claimed: list[ExecutionRecord] = []
            suspects_left = max_suspects
            skipped: list[tuple[_ReadyQueue, tuple[int, int, str, int]]] = []
            while heads and len(claimed) < limit:
                _, task_id = heads[0]
                queue = self._queues[task_id]
                entry = heapq.heappop(queue.due)
                record = self._rows[entry[2]]
                if suspects_left is not None and is_suspect(record.lease_expiries):
                    suspects_left -= 1
                if suspects_left is not None and suspects_left < 0:
                    suspects_left = 0
                    skipped.append((queue, entry))  # a suspect over the limit: stays ready
                else:
                    self._queue_version[record.execution_id] = entry[3] + 1
                    expires, timeout_at = claim_times(now_ms, lease_ms_by_task[task_id], lease_ms)
                    self._claim(record, executor_id, expires, timeout_at, now_ms)
                    claimed.append(record.copy())
                nxt = self._valid_head(queue, now_ms)
                if nxt is None:
                    heapq.heappop(heads)
                else:
                    heapq.heapreplace(heads, (nxt, task_id))
            for queue, entry in skipped:
                heapq.heappush(queue.due, entry)
            return claimed

    def _valid_head(self, queue: _ReadyQueue, now_ms: int) -> tuple[int, int, str, int] | None:
        heap = queue.due
        while heap:
            entry = heap[0]
            record = self._rows[entry[2]]
            if record.status is not S.READY or self._queue_version.get(entry[2]) != entry[3]:
                heapq.heappop(heap)
            elif entry[1] > now_ms:
                # Due by the clock that queued it, not yet by this claimer's: wait again.
                heapq.heappop(heap)
                heapq.heappush(queue.delayed, (entry[1], entry[0], entry[2], entry[3]))
            else:
                return entry
        return None

    def _claim(
        self, record: ExecutionRecord, executor_id: str, expires: int, timeout_at: int, now: int
    ) -> None:
        record.status = S.RUNNING
        record.executor_id = executor_id
        record.lease_token += 1
        record.started_at_ms = now
        record.expires_at_ms = expires
        record.timeout_at_ms = timeout_at
        record.updated_at_ms = now
        heapq.heappush(self._running, (expires, record.execution_id, record.lease_token))

    async def record_outcomes(
        self, outcomes: Sequence[ExecutionOutcome], now_ms: int
    ) -> list[bool]:
        check_outcomes(outcomes, now_ms)
        with self._transaction() as kinds:
            self._check_new_ids([new for outcome in outcomes for new in outcome.inserted()])
            in_call = {outcome.execution_id for outcome in outcomes}
            return [self._record_outcome(outcome, now_ms, kinds, in_call) for outcome in outcomes]

    def _check_new_ids(self, executions: Sequence[NewExecution]) -> None:
        """Raise before any change when an id is already stored or repeated in the batch, or
        a sleeping execution's unique id is taken."""
        seen: set[str] = set()
        for new in executions:
            if new.execution_id in self._rows or new.execution_id in seen:
                raise DuplicateExecutionError(f"Execution {new.execution_id} already exists")
            seen.add(new.execution_id)
        self._check_unique_ids(executions)

    def _check_unique_ids(self, executions: Sequence[NewExecution]) -> None:
        """Raise before any change when a sleeping execution's unique id is taken (stored, or
        earlier in ``executions``)."""
        unique_ids: set[tuple[str, str]] = set()
        for new in executions:
            if new.unique_id is None:
                continue
            key = (new.task_id, new.unique_id)
            if key in unique_ids or self._sleeping_record(*key) is not None:
                raise DuplicateUniqueIdError(
                    f"Sleeping task {new.task_id} already has an unfinished execution with "
                    f"unique id {new.unique_id!r}"
                )
            unique_ids.add(key)

    def _sleeping_record(self, task_id: str, unique_id: str) -> ExecutionRecord | None:
        execution_id = self._by_unique_id.get((task_id, unique_id))
        record = None if execution_id is None else self._rows.get(execution_id)
        return record if record is not None and record.status is S.SLEEPING else None

    def _record_outcome(
        self, outcome: ExecutionOutcome, now_ms: int, kinds: set[WorkKind], in_call: set[str]
    ) -> bool:
        record = self._rows.get(outcome.execution_id)
        if record is None or not outcome_applies(record, outcome):
            return False
        apply_outcome(record, outcome, now_ms)
        parent_id = record.parent_execution_id
        if parent_id is not None and record.close_state is CloseState.READY:
            parent = self._rows.get(parent_id)
            if apply_outcome_close(record, parent, now_ms, parent_in_call=parent_id in in_call):
                self._to_close.pop(record.execution_id, None)
                if parent is not None:
                    self._after_change(parent, kinds)
        for child in outcome.children:
            self._insert(child, now_ms, kinds)
        if outcome.successor is not None:
            parent = self._rows[outcome.successor.parent_execution_id or ""]
            apply_successor(parent, now_ms)
            self._insert(outcome.successor, now_ms, kinds)
        if record.status is S.READY:
            self._enqueue_ready(record, now_ms)
            kinds.add(WorkKind.READY)
        self._after_change(record, kinds)
        return True

    async def claim_parents_to_advance(
        self,
        *,
        task_ids: Collection[str],
        now_ms: int,
        lease_ms: int,
        limit: int,
    ) -> list[ParentToAdvance]:
        check_lease(now_ms, lease_ms)
        with self._transaction():
            wanted = set(task_ids)
            claimed: list[ParentToAdvance] = []
            for execution_id in sorted(self._advanceable):
                if len(claimed) >= limit:
                    break
                record = self._rows[execution_id]
                if record.task_id not in wanted or (
                    record.expires_at_ms is not None and record.expires_at_ms > now_ms
                ):
                    continue
                record.lease_token += 1
                record.expires_at_ms = now_ms + lease_ms
                record.updated_at_ms = now_ms
                children = [self._child_result(c) for c in self._children.get(execution_id, [])]
                claimed.append(ParentToAdvance(record.copy(), children))
            return claimed

    def _child_result(self, execution_id: str) -> ChildResult:
        child = self._rows[execution_id]
        return ChildResult(
            child.execution_id, child.task_id, child.status, child.output, child.error
        )

    async def close_finished_executions(self, *, now_ms: int, limit: int) -> CloseResult:
        with self._transaction() as kinds:
            result = CloseResult()
            while self._to_close and result.closed < limit:
                execution_id = next(iter(self._to_close))
                del self._to_close[execution_id]
                self._close_one(self._rows[execution_id], now_ms, result, kinds)
            return result

    def _close_one(
        self, record: ExecutionRecord, now_ms: int, result: CloseResult, kinds: set[WorkKind]
    ) -> None:
        parent_id = record.parent_execution_id
        parent = None if parent_id is None else self._rows.get(parent_id)
        to_cancel: list[ExecutionRecord] = []
        if record.status is not S.COMPLETED:
            child_ids = list(self._children.get(record.execution_id, []))
            if record.completion_execution_id is not None:
                child_ids.append(record.completion_execution_id)
            to_cancel = [self._rows[c] for c in child_ids if not self._rows[c].is_finished]
        parent_finished = apply_close(record, parent, now_ms)
        if parent is not None:
            self._after_change(parent, kinds)
            if parent_finished:
                result.finished_execution_ids.append(parent.execution_id)
        error = cancelled_child_error(record)
        for child in to_cancel:
            cancel_record(child, now_ms, error)
            self._after_change(child, kinds)
            result.finished_execution_ids.append(child.execution_id)
        result.closed += 1

    async def cancel_execution(
        self, execution_id: str, *, now_ms: int, error: DurableExecutionErrorInfo
    ) -> ExecutionRecord | None:
        with self._transaction() as kinds:
            record = self._rows.get(execution_id)
            if record is None:
                return None
            if not record.is_finished:
                cancel_record(record, now_ms, error)
                self._after_change(record, kinds)
            return self._with_children(record)

    async def claim_cancellations(self, *, executor_id: str, limit: int) -> list[str]:
        with self._transaction():
            pending = self._cancellations.get(executor_id)
            if not pending:
                return []
            ids = list(pending)[:limit]
            for execution_id in ids:
                del pending[execution_id]
                self._rows[execution_id].stop_requested = False
            return ids

    async def renew_leases(
        self,
        *,
        executor_id: str,
        leases: Sequence[tuple[str, int]],
        now_ms: int,
        lease_ms: int,
    ) -> list[bool]:
        with self._transaction():
            renewed: list[bool] = []
            for execution_id, token in leases:
                record = self._rows.get(execution_id)
                if record is None or not renewal_applies(record, executor_id, token, now_ms):
                    renewed.append(False)
                    continue
                before = record.expires_at_ms or 0
                record.expires_at_ms = renewed_expiry(
                    now_ms, lease_ms, record.timeout_at_ms, record.expires_at_ms
                )
                if record.expires_at_ms < before:  # the expiry heap must see it sooner
                    heapq.heappush(self._running, (record.expires_at_ms, execution_id, token))
                renewed.append(True)
            return renewed

    async def expire_leases(
        self, *, now_ms: int, limit: int, max_lease_expiries: int | None = None
    ) -> list[str]:
        with self._transaction() as kinds:
            expired: list[str] = []
            while self._running and self._running[0][0] < now_ms and len(expired) < limit:
                expires, execution_id, token = heapq.heappop(self._running)
                record = self._rows[execution_id]
                if record.status is not S.RUNNING or record.lease_token != token:
                    continue  # a stale entry: that claim ended
                current = record.expires_at_ms
                if current is not None and current != expires:  # renewed since it was pushed
                    if current > expires:
                        heapq.heappush(self._running, (current, execution_id, token))
                    continue
                apply_expiry(record, now_ms, max_lease_expiries)
                if record.is_finished:  # failed as crashed: closed like any failed execution
                    self._after_change(record, kinds)
                else:
                    self._enqueue_ready(record, now_ms)
                    kinds.add(WorkKind.READY)
                expired.append(execution_id)
            return expired

    def _make_ready_again(self, record: ExecutionRecord, now_ms: int, kinds: set[WorkKind]) -> None:
        record.status = S.READY
        record.executor_id = None
        record.lease_token += 1
        record.expires_at_ms = None
        record.start_at_ms = now_ms
        record.updated_at_ms = now_ms
        self._enqueue_ready(record, now_ms)
        kinds.add(WorkKind.READY)

    async def release_executions(
        self, leases: Sequence[tuple[str, int]], *, now_ms: int
    ) -> list[bool]:
        with self._transaction() as kinds:
            released: list[bool] = []
            for execution_id, token in leases:
                record = self._rows.get(execution_id)
                ok = record is not None and record.status is S.RUNNING
                ok = ok and record is not None and record.lease_token == token
                if ok and record is not None:
                    self._make_ready_again(record, now_ms, kinds)
                released.append(ok)
            return released

    async def get_executions(self, execution_ids: Sequence[str]) -> list[ExecutionRecord]:
        with self._lock:
            return [
                self._with_children(self._rows[execution_id])
                for execution_id in execution_ids
                if execution_id in self._rows
            ]

    def _with_children(self, record: ExecutionRecord) -> ExecutionRecord:
        result = record.copy()
        result.child_execution_ids = tuple(self._children.get(record.execution_id, ()))
        return result

    async def find_finished(self, execution_ids: Collection[str]) -> set[str]:
        with self._lock:
            return {
                execution_id
                for execution_id in execution_ids
                if execution_id in self._rows and self._rows[execution_id].is_finished
            }

    # -- sleeping executions (abilities.SleepingExecutions) ------------------------------------

    async def wake_up_sleeping_execution(
        self,
        task_id: str,
        unique_id: str,
        *,
        now_ms: int,
        status: S,
        output: str | None = None,
        error: DurableExecutionErrorInfo | None = None,
    ) -> ExecutionRecord | None:
        check_wakeup_status(status)
        with self._transaction() as kinds:
            execution_id = self._by_unique_id.get((task_id, unique_id))
            if execution_id is None:
                return None
            record = self._rows[execution_id]
            if wakeup_applies(record, status):
                apply_wakeup(record, status, output, error, now_ms)
                self._after_change(record, kinds)
            return self._with_children(record)

    async def time_out_sleeping_executions(self, *, now_ms: int, limit: int) -> list[str]:
        with self._transaction() as kinds:
            timed_out: list[str] = []
            while self._sleeping and self._sleeping[0][0] < now_ms and len(timed_out) < limit:
                _, execution_id = heapq.heappop(self._sleeping)
                record = self._rows[execution_id]
                if record.status is not S.SLEEPING:
                    continue  # woken up or cancelled since
                apply_sleep_timeout(record, now_ms)
                self._after_change(record, kinds)
                timed_out.append(execution_id)
            return timed_out
