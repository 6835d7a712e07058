"""The plain records that cross the storage contract.

Times are integers: milliseconds since the Unix epoch (UTC), as given by the executor's clock.
Inputs and outputs are the serializer's text; the storage never interprets them.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from durable_execution.errors import DurableExecutionErrorInfo
from durable_execution.status import DurableTaskExecutionStatus

__all__ = [
    "ChildResult",
    "CloseResult",
    "CloseState",
    "ExecutionOutcome",
    "ExecutionRecord",
    "NewExecution",
    "ParentToAdvance",
    "PurgeBatch",
    "WorkKind",
    "closes_at_once",
    "roots_to_purge",
]


class WorkKind(enum.StrEnum):
    """Which kind of background work a storage change created (for wake-up listeners)."""

    READY = "ready"  # executions became ready to run
    ADVANCE = "advance"  # parents may have all their children finished
    CLOSE = "close"  # executions finished and wait to be closed
    CANCEL = "cancel"  # running executions were cancelled and must be stopped by their owner


class CloseState(enum.StrEnum):
    """Where an execution is in the closure process."""

    OPEN = "open"  # not finished yet
    READY = "ready"  # finished, waiting to be closed
    CLOSED = "closed"  # closure done (``is_closed``)


@dataclass(slots=True)
class NewExecution:
    """An execution to insert, in status ``ready``.

    ``attributes`` is the JSON text of the execution's attributes (a JSON object), or ``None``
    for none; the storage keeps it as it is and returns it with the record.

    With ``claimed_by`` set, it is inserted already claimed by that executor (direct dispatch:
    the executor that creates the work runs it, saving a claim round trip): status
    ``running``, ``lease_token`` 1, ``started_at_ms = now``,
    ``expires_at_ms = now + claim_lease_ms`` and ``timeout_at_ms = now + claim_timeout_ms``
    (the backstop; ``None``: the lease itself, which its owner then never renews), exactly as
    if claimed at once (see :meth:`DurableStorage.claim_ready_executions`): the lease never
    goes past the backstop.

    With ``unique_id`` set, it is a *sleeping* execution (``executor.sleeping_task``):
    inserted ``sleeping``, never claimed, until a wake-up finishes it
    (:class:`~durable_execution.storage.abilities.SleepingExecutions`) or its deadline
    ``expires_at_ms = now + sleep_timeout_ms`` (also its ``timeout_at_ms``) passes.
    ``unique_id`` is unique per task among the sleeping executions: a duplicate raises
    :class:`~durable_execution.errors.DuplicateUniqueIdError`, inserting nothing.
    """

    execution_id: str
    task_id: str
    input: str
    start_at_ms: int
    root_execution_id: str | None = None
    parent_execution_id: str | None = None
    index_in_parent: int = 0
    is_completion: bool = False
    priority: int = 0
    idempotency_key: str | None = None
    claimed_by: str | None = None
    claim_lease_ms: int = 0
    attributes: str | None = None
    claim_timeout_ms: int | None = None
    unique_id: str | None = None
    sleep_timeout_ms: int = 0


@dataclass(slots=True)
class ExecutionRecord:
    """Everything stored about one execution.

    Leases: a claim sets ``expires_at_ms`` (the lease, renewed by its owner's heartbeats) and
    ``timeout_at_ms`` (the backstop: the claim's start plus the task's timeout and leeway; no
    renewal goes past it). ``timeout_at_ms`` stays after the claim ends, like
    ``started_at_ms``; rows claimed by release 0.1.0 have none. ``lease_expiries`` counts the
    leases of the execution that expired (its owner died or went silent), never reset.

    ``children_policy`` (see :mod:`durable_execution.children_policy`): set by the outcome
    that makes a parent wait for its children. Under ``"all_settled"`` a child that does not
    complete is not counted in ``failed_children`` (the children that fail the parent), so
    the parent moves past its children only once none is unfinished.

    ``unique_id``: the id of a sleeping task's execution (see :class:`NewExecution`), whose
    deadline, while ``sleeping``, is ``expires_at_ms``.
    """

    execution_id: str
    task_id: str
    input: str
    status: DurableTaskExecutionStatus
    root_execution_id: str | None
    parent_execution_id: str | None
    index_in_parent: int
    is_completion: bool
    priority: int
    idempotency_key: str | None
    output: str | None
    run_output: str | None
    error: DurableExecutionErrorInfo | None
    retry_attempts: int
    created_at_ms: int
    updated_at_ms: int
    start_at_ms: int
    started_at_ms: int | None
    expires_at_ms: int | None
    finished_at_ms: int | None
    children_count: int
    unfinished_children: int
    failed_children: int
    completion_execution_id: str | None
    close_state: CloseState
    stop_requested: bool
    executor_id: str | None
    lease_token: int
    attributes: str | None = None
    timeout_at_ms: int | None = None
    lease_expiries: int = 0
    children_policy: str = "fail_fast"
    unique_id: str | None = None
    child_execution_ids: tuple[str, ...] = ()

    @property
    def is_finished(self) -> bool:
        return self.status.is_finished

    @property
    def is_closed(self) -> bool:
        return self.close_state is CloseState.CLOSED

    def copy(self) -> ExecutionRecord:
        """A shallow copy (faster than :func:`copy.copy` for this slotted class)."""
        return ExecutionRecord(*[getattr(self, name) for name in _RECORD_FIELDS])


_RECORD_FIELDS = tuple(f.name for f in fields(ExecutionRecord))


@dataclass(slots=True, frozen=True)
class ChildResult:
    """A finished (or not) child, as a parent advancing past its children sees it."""

    execution_id: str
    task_id: str
    status: DurableTaskExecutionStatus
    output: str | None
    error: DurableExecutionErrorInfo | None


@dataclass(slots=True)
class ParentToAdvance:
    """A parent claimed because its children are all finished or one of them did not complete.

    ``children`` are in the order the parent returned them (the completion task excluded).
    """

    record: ExecutionRecord
    children: list[ChildResult]


@dataclass(slots=True)
class ExecutionOutcome:
    """A conditional write of what a claim produced.

    Applied only when the execution's status is still ``expected_status`` and its lease token is
    still ``lease_token``; otherwise it is ignored (the claim was lost: fencing).

    - ``status=ready``: a retry; ``retry_attempts`` + 1, ``start_at_ms`` as given, ``error`` kept
      as the previous attempt's error.
    - a finished status: ``output`` and no error (completed: an earlier attempt's error is
      cleared, with or without a successor) or ``error`` (others); the execution is then
      closed, in the same write when its closure would only update its parent (see
      :meth:`~durable_execution.storage.DurableStorage.record_outcomes`).
    - ``waiting_for_children``: ``run_output`` stored and ``children`` inserted in the same
      transaction, in order, after the children the execution already has (a parent moving
      on from ``waiting_for_children`` may add more); both children counts grow by as many,
      and the parent's ``children_policy`` becomes the outcome's.
    - ``waiting_for_on_run_and_children_complete``: ``run_output`` stored (when given) and the
      single completion execution in ``children`` (``is_completion=True``) inserted with it.

    ``successor`` (only with ``status=completed``, for a child that is not a completion
    task): the parent's next child, inserted in the same transaction. It takes the completed
    child's place: the child is closed at once, the parent's ``unfinished_children`` stays as
    it is and its ``children_count`` grows by one. This is how a sequence moves to its next
    step in one write instead of a closure and an advance of the parent.
    """

    execution_id: str
    lease_token: int
    expected_status: DurableTaskExecutionStatus
    status: DurableTaskExecutionStatus
    output: str | None = None
    run_output: str | None = None
    error: DurableExecutionErrorInfo | None = None
    start_at_ms: int | None = None
    children: Sequence[NewExecution] = field(default_factory=tuple)
    successor: NewExecution | None = None
    children_policy: str = "fail_fast"

    def __post_init__(self) -> None:
        if self.successor is not None and (
            self.status is not DurableTaskExecutionStatus.COMPLETED
            or self.children
            or self.successor.parent_execution_id is None
            or self.successor.is_completion
            or self.successor.idempotency_key is not None
        ):
            raise ValueError(
                "a successor goes with a completed outcome without children, and is a child "
                "(not a completion task, without idempotency key) of the same parent"
            )

    def inserted(self) -> Sequence[NewExecution]:
        """The executions this outcome inserts when it applies: children, then successor."""
        if self.successor is None:
            return self.children
        return [*self.children, self.successor]


@dataclass(slots=True)
class CloseResult:
    """What one batch of closures did.

    ``closed``: how many executions were closed. ``finished_execution_ids``: executions that
    became finished as a consequence (parents completed or failed by their completion task,
    unfinished children cancelled), so waiters can be told.
    """

    closed: int = 0
    finished_execution_ids: list[str] = field(default_factory=list)


@dataclass(slots=True, frozen=True)
class PurgeBatch:
    """What one batch of a purge did (see
    :meth:`~durable_execution.storage.abilities.ExecutionPurge.purge_closed_trees`).

    ``trees``: root executions deleted, each with all its descendants; ``executions``: rows
    deleted in all (roots included). ``next_after``: where the next batch starts (the last
    execution id this one scanned), ``None`` once the scan reached the end of the ids that
    can qualify.
    """

    trees: int
    executions: int
    next_after: str | None


def roots_to_purge(
    scanned: Sequence[tuple[str, Any]], scan_limit: int, max_trees: int
) -> tuple[list[str], str | None]:
    """The roots among ``scanned`` (``(execution_id, is_root)`` rows in id order, at most
    ``scan_limit`` of them) that a purge batch considers, at most ``max_trees``, and where the
    next batch starts (see :attr:`PurgeBatch.next_after`)."""
    next_after = scanned[-1][0] if len(scanned) == scan_limit else None
    roots: list[str] = []
    for execution_id, is_root in scanned:
        if is_root:
            roots.append(execution_id)
            if len(roots) == max_trees:
                return roots, execution_id
    return roots, next_after


def closes_at_once(
    parent_execution_id: str | None,
    status: DurableTaskExecutionStatus,
    unfinished_children: int,
) -> bool:
    """Whether a newly finished execution has nothing to close, so it can be closed at once.

    Closure updates the parent and cancels unfinished children of an execution that did not
    complete; a root with no unfinished children (or that completed) needs neither.
    """
    return parent_execution_id is None and (
        status is DurableTaskExecutionStatus.COMPLETED or unfinished_children == 0
    )
