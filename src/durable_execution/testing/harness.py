"""The scenario harness of the storage conformance suite: builders, constants and checks.

A :class:`Harness` wraps the storage under test for one scenario. Every write made through it
is followed by a read of every execution the scenario has seen so far, and each status change
found that way is checked against :data:`~durable_execution.status.ALLOWED_TRANSITIONS`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import fields
from typing import Protocol, TypeVar

from durable_execution.errors import DurableExecutionErrorInfo, DurableExecutionErrorType
from durable_execution.status import ALLOWED_TRANSITIONS
from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.protocol import DurableStorage
from durable_execution.storage.records import (
    CloseResult,
    CloseState,
    ExecutionOutcome,
    ExecutionRecord,
    NewExecution,
    ParentToAdvance,
)

__all__ = [
    "CHILD_TASK",
    "ERROR_1",
    "ERROR_2",
    "EXECUTOR_1",
    "EXECUTOR_2",
    "COMPLETION_TASK",
    "LEASES",
    "PARENT_TASK",
    "T0",
    "TASK_A",
    "TASK_B",
    "Connector",
    "Harness",
    "assert_fields",
    "assert_new_record",
    "assert_same_record",
    "assert_transition_allowed",
    "child_of",
    "ids_of",
    "new_execution",
    "outcome_for",
]

T = TypeVar("T")

T0 = 1_700_000_000_000
"""The base time of every scenario, in milliseconds since the epoch."""

TASK_A = "task-a"
TASK_B = "task-b"
PARENT_TASK = "parent-task"
CHILD_TASK = "child-task"
COMPLETION_TASK = "completion-task"
LEASES: Mapping[str, int] = {
    TASK_A: 30_000,
    TASK_B: 60_000,
    PARENT_TASK: 20_000,
    CHILD_TASK: 40_000,
    COMPLETION_TASK: 50_000,
}
"""Lease length of each task the scenarios use (all different, to tell them apart)."""

EXECUTOR_1 = "executor-1"
EXECUTOR_2 = "executor-2"

ERROR_1 = DurableExecutionErrorInfo(
    message="first failure: ünïcode ✓",
    error_type=DurableExecutionErrorType.GENERIC,
    is_retryable=True,
    exception_type="builtins.ValueError",
    traceback='Traceback (most recent call last):\n  File "x.py", line 1\nValueError',
)
ERROR_2 = DurableExecutionErrorInfo(
    message="second failure",
    error_type=DurableExecutionErrorType.TIMED_OUT,
    is_retryable=False,
)


class Connector(Protocol):
    """What the harness needs from the suite: more storage objects, and their disposal."""

    async def reconnect(self, storage: DurableStorage) -> DurableStorage: ...

    async def dispose(self, storage: DurableStorage) -> None: ...


def assert_transition_allowed(before: ExecutionRecord, after: ExecutionRecord) -> None:
    """Fail unless ``after.status`` equals ``before.status`` or is an allowed next status."""
    if before.status is after.status:
        return
    allowed = ALLOWED_TRANSITIONS[before.status]
    assert after.status in allowed, (
        f"execution {after.execution_id} moved {before.status.value} -> {after.status.value}, "
        f"which status.ALLOWED_TRANSITIONS does not allow"
    )


def ids_of(records: Iterable[ExecutionRecord]) -> list[str]:
    """The execution ids of ``records``, in order."""
    return [record.execution_id for record in records]


def assert_fields(record: ExecutionRecord, **expected: object) -> None:
    """Fail, naming every mismatch, unless each named field of ``record`` has its value."""
    wrong = [
        f"{name} is {getattr(record, name)!r}, expected {value!r}"
        for name, value in expected.items()
        if getattr(record, name) != value
    ]
    assert not wrong, f"execution {record.execution_id}: " + "; ".join(wrong)


def assert_same_record(actual: ExecutionRecord, expected: ExecutionRecord) -> None:
    """Fail, naming every mismatch, unless the two records are equal field by field."""
    assert_fields(actual, **{f.name: getattr(expected, f.name) for f in fields(expected)})


def assert_new_record(record: ExecutionRecord, new: NewExecution, now_ms: int) -> None:
    """Fail unless ``record`` is ``new`` as it must be stored when inserted at ``now_ms``."""
    assert_fields(
        record,
        execution_id=new.execution_id,
        task_id=new.task_id,
        input=new.input,
        status=S.READY,
        root_execution_id=new.root_execution_id,
        parent_execution_id=new.parent_execution_id,
        index_in_parent=new.index_in_parent,
        is_completion=new.is_completion,
        priority=new.priority,
        idempotency_key=new.idempotency_key,
        output=None,
        run_output=None,
        error=None,
        retry_attempts=0,
        created_at_ms=now_ms,
        updated_at_ms=now_ms,
        start_at_ms=new.start_at_ms,
        started_at_ms=None,
        expires_at_ms=None,
        finished_at_ms=None,
        children_count=0,
        unfinished_children=0,
        failed_children=0,
        completion_execution_id=None,
        close_state=CloseState.OPEN,
        stop_requested=False,
        executor_id=None,
        lease_token=0,
        timeout_at_ms=None,
        lease_expiries=0,
        children_policy="fail_fast",
        child_execution_ids=(),
    )


def new_execution(
    execution_id: str,
    task_id: str = TASK_A,
    *,
    start_at_ms: int = T0,
    priority: int = 0,
    idempotency_key: str | None = None,
    input: str | None = None,
) -> NewExecution:
    """A root execution to insert; its input defaults to a text naming it."""
    return NewExecution(
        execution_id=execution_id,
        task_id=task_id,
        input=f'{{"input-of": "{execution_id}"}}' if input is None else input,
        start_at_ms=start_at_ms,
        priority=priority,
        idempotency_key=idempotency_key,
    )


def child_of(
    parent: ExecutionRecord,
    execution_id: str,
    index: int,
    *,
    task_id: str = CHILD_TASK,
    start_at_ms: int = T0,
    priority: int = 0,
    is_completion: bool = False,
) -> NewExecution:
    """A child (or, with ``is_completion``, the completion task) of ``parent``."""
    return NewExecution(
        execution_id=execution_id,
        task_id=task_id,
        input=f"child input {execution_id}",
        start_at_ms=start_at_ms,
        root_execution_id=parent.root_execution_id or parent.execution_id,
        parent_execution_id=parent.execution_id,
        index_in_parent=index,
        is_completion=is_completion,
        priority=priority,
    )


def outcome_for(
    record: ExecutionRecord,
    status: S,
    *,
    output: str | None = None,
    run_output: str | None = None,
    error: DurableExecutionErrorInfo | None = None,
    start_at_ms: int | None = None,
    children: Sequence[NewExecution] = (),
    lease_token: int | None = None,
    expected_status: S | None = None,
    successor: NewExecution | None = None,
    children_policy: str = "fail_fast",
) -> ExecutionOutcome:
    """An outcome for ``record`` as claimed: its status and lease token unless overridden."""
    return ExecutionOutcome(
        execution_id=record.execution_id,
        lease_token=record.lease_token if lease_token is None else lease_token,
        expected_status=record.status if expected_status is None else expected_status,
        status=status,
        output=output,
        run_output=run_output,
        error=error,
        start_at_ms=start_at_ms,
        children=tuple(children),
        successor=successor,
        children_policy=children_policy,
    )


class Harness:
    """One scenario's view of the storage under test.

    ``harness[execution_id]`` is the execution as last read. Writes go through the methods
    below, which re-read every known execution afterwards and check each status change.
    """

    def __init__(self, connector: Connector, storage: DurableStorage) -> None:
        self.connector = connector
        self.storage = storage
        self.latest: dict[str, ExecutionRecord] = {}
        self.others: list[DurableStorage] = []

    def __getitem__(self, execution_id: str) -> ExecutionRecord:
        return self.latest[execution_id]

    # -- storage objects ---------------------------------------------------------------------

    async def connect(self) -> DurableStorage:
        """Another storage object on the same store, disposed of at the end of the scenario."""
        other = await self.connector.reconnect(self.storage)
        await other.initialize()
        if other is not self.storage and all(other is not o for o in self.others):
            self.others.append(other)
        return other

    def run_in_thread(self, work: Callable[[DurableStorage], Awaitable[T]]) -> Callable[[], T]:
        """A function running ``work`` in a new event loop, on a storage object of its own.

        Meant for ``loop.run_in_executor``: the storage object comes from ``reconnect`` called
        inside the new loop, and is disposed of there (unless it is the scenario's own).
        """

        async def main() -> T:
            storage = await self.connector.reconnect(self.storage)
            await storage.initialize()
            try:
                return await work(storage)
            finally:
                if storage is not self.storage:
                    await self.connector.dispose(storage)

        return lambda: asyncio.run(main())

    async def dispose_all(self) -> None:
        """Dispose of the storage objects of the scenario, its own one last."""
        while self.others:
            await self.connector.dispose(self.others.pop())
        await self.connector.dispose(self.storage)

    # -- reads -------------------------------------------------------------------------------

    def observe(self, record: ExecutionRecord) -> ExecutionRecord:
        """Remember ``record``, checking its status change since it was last seen."""
        before = self.latest.get(record.execution_id)
        if before is not None:
            assert_transition_allowed(before, record)
        self.latest[record.execution_id] = record
        return record

    async def refresh(self, extra_ids: Collection[str] = ()) -> None:
        """Re-read every known execution (and ``extra_ids``), checking status changes."""
        ids = list(self.latest) + [i for i in extra_ids if i not in self.latest]
        records = await self.storage.get_executions(ids)
        missing = set(self.latest) - {record.execution_id for record in records}
        assert not missing, f"executions disappeared from the storage: {sorted(missing)}"
        for record in records:
            self.observe(record)

    async def get(self, execution_id: str) -> ExecutionRecord:
        """Read one execution, which must exist."""
        records = await self.storage.get_executions([execution_id])
        assert [r.execution_id for r in records] == [execution_id], (
            f"get_executions([{execution_id!r}]) returned {records!r}"
        )
        return self.observe(records[0])

    # -- writes ------------------------------------------------------------------------------

    async def insert(self, *executions: NewExecution, now_ms: int = T0) -> list[str]:
        """Insert ``executions`` and read them back."""
        ids = await self.storage.insert_executions(list(executions), now_ms)
        await self.refresh([e.execution_id for e in executions])
        return ids

    async def claim(
        self,
        tasks: Collection[str] = (TASK_A, TASK_B),
        *,
        now_ms: int = T0,
        limit: int = 100,
        executor_id: str = EXECUTOR_1,
        storage: DurableStorage | None = None,
        lease_ms: int | None = None,
        max_suspects: int | None = None,
    ) -> list[ExecutionRecord]:
        """Claim ready executions of ``tasks`` (with their :data:`LEASES` as backstops)."""
        claimed = await (storage or self.storage).claim_ready_executions(
            executor_id=executor_id,
            lease_ms_by_task={task: LEASES[task] for task in tasks},
            now_ms=now_ms,
            limit=limit,
            lease_ms=lease_ms,
            max_suspects=max_suspects,
        )
        for record in claimed:
            self.observe(record)
        await self.refresh()
        return claimed

    async def claim_ids(
        self, *ids: str, now_ms: int = T0, executor_id: str = EXECUTOR_1
    ) -> list[ExecutionRecord]:
        """Claim exactly the executions ``ids`` (the only due ones of their tasks)."""
        tasks = {self[i].task_id for i in ids}
        claimed = await self.claim(tasks, now_ms=now_ms, limit=len(ids), executor_id=executor_id)
        by_id = {r.execution_id: r for r in claimed}
        assert sorted(by_id) == sorted(ids), f"claimed {sorted(by_id)}, expected {sorted(ids)}"
        return [by_id[i] for i in ids]

    async def record(self, *outcomes: ExecutionOutcome, now_ms: int = T0) -> list[bool]:
        """Record ``outcomes`` and read back their executions and children."""
        applied = await self.storage.record_outcomes(list(outcomes), now_ms)
        new_ids = [c.execution_id for o in outcomes for c in o.inserted()]
        await self.refresh([o.execution_id for o in outcomes] + new_ids)
        return applied

    async def finish(
        self,
        record: ExecutionRecord,
        status: S,
        *,
        now_ms: int = T0,
        output: str | None = None,
        error: DurableExecutionErrorInfo | None = None,
    ) -> ExecutionRecord:
        """Record a finished status for ``record`` as claimed, which must apply."""
        outcome = outcome_for(record, status, output=output, error=error)
        assert await self.record(outcome, now_ms=now_ms) == [True]
        return self[record.execution_id]

    async def spawn(
        self,
        parent: ExecutionRecord,
        child_ids: Sequence[str],
        *,
        now_ms: int = T0,
        task_id: str = CHILD_TASK,
        children_policy: str = "fail_fast",
    ) -> ExecutionRecord:
        """Move the claimed ``parent`` to ``waiting_for_children`` with these children, under
        ``children_policy``."""
        children = [child_of(parent, c, i, task_id=task_id) for i, c in enumerate(child_ids)]
        outcome = outcome_for(
            parent,
            S.WAITING_FOR_CHILDREN,
            run_output="ran",
            children=children,
            children_policy=children_policy,
        )
        assert await self.record(outcome, now_ms=now_ms) == [True]
        return self[parent.execution_id]

    async def start_parent(
        self,
        execution_id: str,
        child_ids: Sequence[str],
        *,
        now_ms: int = T0,
        children_policy: str = "fail_fast",
    ) -> ExecutionRecord:
        """Insert a root of :data:`PARENT_TASK`, claim it and give it these children."""
        await self.insert(new_execution(execution_id, PARENT_TASK, start_at_ms=now_ms))
        (parent,) = await self.claim_ids(execution_id, now_ms=now_ms)
        return await self.spawn(parent, child_ids, now_ms=now_ms, children_policy=children_policy)

    async def advanceable_parent(
        self, execution_id: str, child_ids: Sequence[str], *, now_ms: int = T0
    ) -> ExecutionRecord:
        """A parent whose children (``child_ids``) all completed, with output ``out-<id>``,
        and were closed by their outcomes: it can advance."""
        await self.start_parent(execution_id, child_ids, now_ms=now_ms)
        for child in await self.claim_ids(*child_ids, now_ms=now_ms):
            await self.finish(child, S.COMPLETED, output=f"out-{child.execution_id}", now_ms=now_ms)
            assert self[child.execution_id].is_closed
        total, finished = await self.close_all(now_ms=now_ms)
        assert (total, finished) == (0, []), (total, finished)
        return self[execution_id]

    async def close(self, *, now_ms: int = T0, limit: int = 100) -> CloseResult:
        """One call of ``close_finished_executions``."""
        result = await self.storage.close_finished_executions(now_ms=now_ms, limit=limit)
        await self.refresh()
        return result

    async def close_all(self, *, now_ms: int = T0, limit: int = 100) -> tuple[int, list[str]]:
        """Close until nothing is left: the total closed and every id reported finished."""
        total, finished = 0, list[str]()
        for _ in range(100):
            result = await self.close(now_ms=now_ms, limit=limit)
            if result.closed == 0:
                assert result.finished_execution_ids == []
                return total, finished
            total += result.closed
            finished.extend(result.finished_execution_ids)
        raise AssertionError("close_finished_executions never ran out of work")

    async def cancel(
        self,
        execution_id: str,
        *,
        now_ms: int = T0,
        error: DurableExecutionErrorInfo = ERROR_2,
    ) -> ExecutionRecord | None:
        """Cancel ``execution_id`` and read everything back."""
        result = await self.storage.cancel_execution(execution_id, now_ms=now_ms, error=error)
        if result is not None:
            self.observe(result)
        await self.refresh()
        return result

    async def claim_parents(
        self,
        task_ids: Collection[str] = (PARENT_TASK,),
        *,
        now_ms: int = T0,
        lease_ms: int = 10_000,
        limit: int = 100,
    ) -> list[ParentToAdvance]:
        """Claim parents that can advance."""
        parents = await self.storage.claim_parents_to_advance(
            task_ids=task_ids, now_ms=now_ms, lease_ms=lease_ms, limit=limit
        )
        for parent in parents:
            self.observe(parent.record)
        await self.refresh()
        return parents

    async def expire(
        self, *, now_ms: int, limit: int = 100, max_lease_expiries: int | None = None
    ) -> list[str]:
        """One call of ``expire_leases``."""
        expired = await self.storage.expire_leases(
            now_ms=now_ms, limit=limit, max_lease_expiries=max_lease_expiries
        )
        await self.refresh()
        return expired

    async def renew(
        self,
        *leases: ExecutionRecord | tuple[str, int],
        now_ms: int,
        lease_ms: int,
        executor_id: str = EXECUTOR_1,
    ) -> list[bool]:
        """One call of ``renew_leases`` for these claims (records as claimed, or
        ``(execution id, lease token)`` pairs)."""
        pairs = [
            lease if isinstance(lease, tuple) else (lease.execution_id, lease.lease_token)
            for lease in leases
        ]
        renewed = await self.storage.renew_leases(
            executor_id=executor_id, leases=pairs, now_ms=now_ms, lease_ms=lease_ms
        )
        await self.refresh()
        return renewed

    async def release(self, *leases: tuple[str, int], now_ms: int = T0) -> list[bool]:
        """One call of ``release_executions``."""
        released = await self.storage.release_executions(list(leases), now_ms=now_ms)
        await self.refresh()
        return released
