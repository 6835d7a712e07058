"""The state changes of the storage contract as pure functions on :class:`ExecutionRecord`.

The in-memory backend applies them directly; the SQL backends express the same rules in SQL,
and the conformance suite checks that they agree. An operator's retry, which takes finished
executions back, has its rules in :mod:`durable_execution.storage.retry_rules`.
"""

from __future__ import annotations

from durable_execution.children_policy import ALL_SETTLED
from durable_execution.errors import DurableExecutionErrorInfo, DurableExecutionErrorType
from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.records import (
    CloseState,
    ExecutionOutcome,
    ExecutionRecord,
    NewExecution,
    WorkKind,
    closes_at_once,
)

__all__ = [
    "SUSPECT_LEASE_EXPIRIES",
    "apply_close",
    "apply_expiry",
    "apply_outcome",
    "apply_outcome_close",
    "apply_sleep_timeout",
    "apply_successor",
    "apply_wakeup",
    "check_wakeup_status",
    "cancel_record",
    "cancelled_child_error",
    "claim_times",
    "closes_with_outcome",
    "completion_failed_error",
    "crashed_error",
    "expiry_crashes",
    "fails_parent",
    "inserted_claim",
    "is_advanceable",
    "is_suspect",
    "new_record",
    "outcome_applies",
    "outcome_work",
    "record_work",
    "renewal_applies",
    "renewed_expiry",
    "sleep_timed_out_error",
    "wakeup_applies",
    "work_created",
]


def is_advanceable(status: S, unfinished_children: int, failed_children: int) -> bool:
    """Whether a parent can move past its children: none is unfinished, or one did not
    complete (SQL twin: ``sql_rules.advanceable_sql``)."""
    return status is S.WAITING_FOR_CHILDREN and (unfinished_children == 0 or failed_children > 0)


def work_created(
    status: S,
    close_state: CloseState,
    unfinished_children: int = 0,
    failed_children: int = 0,
    stop_requested: bool = False,
    inserted_ready: bool = False,
) -> set[WorkKind]:
    """The background work a change leaves, from an execution's new state: the one rule
    behind every backend's wake-ups and the executor's own (``inserted_ready``: the change
    also inserted executions that wait to be claimed). It runs once per change: the
    advance rule is :func:`is_advanceable`, written out."""
    kinds: set[WorkKind] = set()
    if status is S.READY or inserted_ready:
        kinds.add(WorkKind.READY)
    if close_state is CloseState.READY:
        kinds.add(WorkKind.CLOSE)
    if status is S.WAITING_FOR_CHILDREN and (unfinished_children == 0 or failed_children > 0):
        kinds.add(WorkKind.ADVANCE)
    if stop_requested:
        kinds.add(WorkKind.CANCEL)
    return kinds


def record_work(record: ExecutionRecord) -> set[WorkKind]:
    """:func:`work_created` of ``record`` as it now stands."""
    return work_created(
        record.status,
        record.close_state,
        record.unfinished_children,
        record.failed_children,
        record.stop_requested,
    )


def outcome_work(record: ExecutionRecord, outcome: ExecutionOutcome) -> set[WorkKind]:
    """The work ``outcome`` creates once applied to ``record`` (as claimed), without applying
    it: what the executor that wrote it wakes its own loops for. Equal to
    :func:`record_work` of the record after :func:`apply_outcome` and
    :func:`apply_outcome_close`, plus ``ready`` when it inserts executions that wait to be
    claimed, and ``advance`` when it closed a child (its parent may have no unfinished child
    left: the executor cannot tell without reading it); a test checks it. It assumes the
    parent had no outcome in the same call (see :func:`closes_with_outcome`): when it had, the
    child waits for the close loop's next pass. Written out because it runs once per outcome
    on the executor's hot path."""
    status = outcome.status
    kinds: set[WorkKind] = set()
    if status is S.READY:
        kinds.add(WorkKind.READY)
    elif status.is_finished:
        if outcome.successor is not None or closes_at_once(
            record.parent_execution_id, status, record.unfinished_children
        ):
            pass
        elif closes_with_outcome(record, status):
            kinds.add(WorkKind.ADVANCE)  # its parent may now move past its children
        else:
            kinds.add(WorkKind.CLOSE)
    elif status is S.WAITING_FOR_CHILDREN and not outcome.children:
        kinds.add(WorkKind.ADVANCE)  # no child to wait for (never made by the executor)
    if (outcome.children or outcome.successor is not None) and any(
        new.claimed_by is None for new in outcome.inserted()
    ):
        kinds.add(WorkKind.READY)
    return kinds


def new_record(new: NewExecution, now_ms: int) -> ExecutionRecord:
    """The stored form of a newly inserted execution (``ready``, or ``running`` when it is
    inserted claimed, see :class:`NewExecution`)."""
    status, executor_id, lease_token = S.READY, None, 0
    started_at_ms = expires_at_ms = timeout_at_ms = None
    if new.unique_id is not None:
        status = S.SLEEPING
        expires_at_ms = timeout_at_ms = now_ms + new.sleep_timeout_ms
    elif new.claimed_by is not None:
        status, executor_id, lease_token, started_at_ms = S.RUNNING, new.claimed_by, 1, now_ms
        lease_ms, timeout_ms = inserted_claim(new)
        expires_at_ms, timeout_at_ms = now_ms + lease_ms, now_ms + timeout_ms
    # Positional, in the order of the fields (a test compares every field): on the path of
    # every insert and dispatch, and keywords cost this call eight times as much.
    return ExecutionRecord(
        new.execution_id,
        new.task_id,
        new.input,
        status,
        new.root_execution_id,
        new.parent_execution_id,
        new.index_in_parent,
        new.is_completion,
        new.priority,
        new.idempotency_key,
        None,  # output
        None,  # run_output
        None,  # error
        0,  # retry_attempts
        now_ms,  # created_at_ms
        now_ms,  # updated_at_ms
        new.start_at_ms,
        started_at_ms,
        expires_at_ms,
        None,  # finished_at_ms
        0,  # children_count
        0,  # unfinished_children
        0,  # failed_children
        None,  # completion_execution_id
        CloseState.OPEN,
        False,  # stop_requested
        executor_id,
        lease_token,
        new.attributes,
        timeout_at_ms,
        0,  # lease_expiries
        "fail_fast",  # children_policy
        new.unique_id,
        (),  # child_execution_ids
    )


def _finish(record: ExecutionRecord, status: S, now_ms: int) -> None:
    record.status = status
    record.finished_at_ms = now_ms
    # Closed at once when there is nothing to close (SQL twin: finish_close_state_sql).
    record.close_state = (
        CloseState.CLOSED
        if closes_at_once(record.parent_execution_id, status, record.unfinished_children)
        else CloseState.READY
    )


def outcome_applies(record: ExecutionRecord | None, outcome: ExecutionOutcome) -> bool:
    """Whether ``outcome`` may be applied to ``record``: its status and lease token are still
    the ones the outcome was produced for (fencing), and a successor is its sibling."""
    return (
        record is not None
        and record.status is outcome.expected_status
        and record.lease_token == outcome.lease_token
        and (
            outcome.successor is None
            or (
                not record.is_completion
                and record.parent_execution_id == outcome.successor.parent_execution_id
            )
        )
    )


def apply_outcome(record: ExecutionRecord, outcome: ExecutionOutcome, now_ms: int) -> None:
    """Apply an outcome whose condition (status and lease token) was already checked."""
    status = outcome.status
    record.updated_at_ms = now_ms
    record.executor_id = None
    record.expires_at_ms = None
    if outcome.run_output is not None:
        record.run_output = outcome.run_output
    if status is S.READY:
        record.status = S.READY
        record.retry_attempts += 1
        record.error = outcome.error
        record.start_at_ms = outcome.start_at_ms if outcome.start_at_ms is not None else now_ms
    elif status is S.WAITING_FOR_CHILDREN:
        record.status = status
        record.children_policy = outcome.children_policy
        record.children_count += len(outcome.children)
        record.unfinished_children += len(outcome.children)
    elif status is S.WAITING_FOR_ON_RUN_AND_CHILDREN_COMPLETE:
        record.status = status
        record.completion_execution_id = outcome.children[0].execution_id
        record.unfinished_children = 1
    else:
        record.output = outcome.output if status is S.COMPLETED else None
        record.error = None if status is S.COMPLETED else outcome.error
        _finish(record, status, now_ms)
        if outcome.successor is not None:
            record.close_state = CloseState.CLOSED  # its successor takes its place


def closes_with_outcome(
    record: ExecutionRecord, status: S, *, parent_in_call: bool = False
) -> bool:
    """Whether a child that finishes with ``status`` by an outcome is closed in the outcome's
    own write, its parent updated as its closure would (:func:`apply_outcome_close`), instead
    of waiting for :meth:`~durable_execution.storage.DurableStorage.close_finished_executions`.

    So it is when its closure would only update its parent: it is not a completion task
    (whose closure finishes the parent), it has no unfinished child to cancel (it completed,
    or has none), and its parent has no outcome in the same call (``parent_in_call``: a parent
    moving past its children, ``children_failed`` while this one ran), so that the outcomes
    of one call never both change one row, whatever order a storage applies them in. Roots
    with nothing to close are closed at once too (:func:`closes_at_once`). SQL twin:
    ``sql_rules.outcome_close_state_sql``.
    """
    return (
        record.parent_execution_id is not None
        and not record.is_completion
        and not parent_in_call
        and (status is S.COMPLETED or record.unfinished_children == 0)
    )


def apply_outcome_close(
    record: ExecutionRecord,
    parent: ExecutionRecord | None,
    now_ms: int,
    *,
    parent_in_call: bool = False,
) -> bool:
    """After :func:`apply_outcome`: close ``record`` in the same write when
    :func:`closes_with_outcome` says so, updating its ``parent`` (one fewer unfinished child,
    one more failed child when it did not complete, see :func:`fails_parent`) exactly as
    :func:`apply_close` would. Returns whether it closed it."""
    if record.close_state is not CloseState.READY or not closes_with_outcome(
        record, record.status, parent_in_call=parent_in_call
    ):
        return False
    apply_close(record, parent, now_ms)
    return True


def apply_successor(parent: ExecutionRecord, now_ms: int) -> None:
    """Count a successor in its parent (see :class:`ExecutionOutcome`): one more child, and
    as many unfinished ones as before (the successor replaces the child that completed)."""
    parent.children_count += 1
    parent.updated_at_ms = now_ms


def cancel_record(record: ExecutionRecord, now_ms: int, error: DurableExecutionErrorInfo) -> None:
    """Cancel an unfinished execution; a running one is flagged for its owner to stop."""
    was_running = record.status is S.RUNNING
    record.error = error
    record.updated_at_ms = now_ms
    record.lease_token += 1
    record.expires_at_ms = None
    record.stop_requested = was_running
    if not was_running:
        record.executor_id = None
    _finish(record, S.CANCELLED, now_ms)


def completion_failed_error(completion: ExecutionRecord) -> DurableExecutionErrorInfo:
    """The parent's error when its completion task did not complete."""
    reason = completion.error.message if completion.error is not None else completion.status.value
    return DurableExecutionErrorInfo(
        message=(
            f"on_run_and_children_complete task {completion.task_id} ({completion.execution_id}) "
            f"ended {completion.status.value}: {reason}"
        ),
        error_type=DurableExecutionErrorType.GENERIC,
        is_retryable=False,
    )


def cancelled_child_error(parent: ExecutionRecord) -> DurableExecutionErrorInfo:
    """The error of the unfinished children cancelled when ``parent`` did not complete."""
    return DurableExecutionErrorInfo(
        message=(
            f"Parent task {parent.task_id} ({parent.execution_id}) ended "
            f"{parent.status.value}; its unfinished children were cancelled"
        ),
        error_type=DurableExecutionErrorType.CANCELLED,
        is_retryable=False,
    )


def fails_parent(child_status: S, parent_policy: str) -> bool:
    """Whether a child closed with ``child_status`` counts in its parent's
    ``failed_children``: it did not complete, and its parent's ``children_policy`` is not
    ``all_settled`` (SQL twin: ``sql_rules.counted_failures_sql``)."""
    return child_status is not S.COMPLETED and parent_policy != ALL_SETTLED


def apply_close(record: ExecutionRecord, parent: ExecutionRecord | None, now_ms: int) -> bool:
    """Close ``record`` and update its unfinished ``parent``. Returns whether the parent finished.

    Cancelling ``record``'s unfinished children (when it did not complete) is left to the
    caller, which knows where the children are.
    """
    record.close_state = CloseState.CLOSED
    record.updated_at_ms = now_ms
    if parent is None or parent.is_finished:
        return False
    parent.updated_at_ms = now_ms
    parent.unfinished_children = max(0, parent.unfinished_children - 1)
    if not record.is_completion:
        if fails_parent(record.status, parent.children_policy):
            parent.failed_children += 1
        return False
    if record.status is S.COMPLETED:
        parent.output = record.output
        parent.error = None
        _finish(parent, S.COMPLETED, now_ms)
    else:
        parent.error = completion_failed_error(record)
        _finish(parent, S.ON_RUN_AND_CHILDREN_COMPLETE_FAILED, now_ms)
    return True


# -- leases ----------------------------------------------------------------------------------

SUSPECT_LEASE_EXPIRIES = 2
"""An execution whose lease expired this many times is a *suspect*: it may be what keeps
killing the processes that run it (a poison task). Claims can take suspects one at a time
(``max_suspects`` of :meth:`~durable_execution.storage.DurableStorage.claim_ready_executions`),
so that a poison task stops taking healthy executions down with it. Two, not one: a process
killed once (a deploy, the OOM killer) makes everything it ran expire once, and that must not
slow their recovery down (see docs/reliability.md, "Poison tasks")."""


def is_suspect(lease_expiries: int) -> bool:
    """Whether an execution whose lease expired ``lease_expiries`` times is a suspect (SQL
    twin: ``sql_rules.suspect_sql``)."""
    return lease_expiries >= SUSPECT_LEASE_EXPIRIES


def claim_times(now_ms: int, timeout_ms: int, lease_ms: int | None) -> tuple[int, int]:
    """``(expires_at_ms, timeout_at_ms)`` of a claim made at ``now_ms``: the backstop is
    ``now + timeout_ms`` (the task's timeout plus leeway), the lease ``now + lease_ms`` but
    never past the backstop; without ``lease_ms`` the lease is the backstop."""
    timeout_at = now_ms + timeout_ms
    if lease_ms is None or lease_ms >= timeout_ms:
        return timeout_at, timeout_at
    return now_ms + lease_ms, timeout_at


def inserted_claim(new: NewExecution) -> tuple[int, int]:
    """``(lease_ms, timeout_ms)`` of an execution inserted claimed (see
    :class:`NewExecution`): its backstop, and its lease, never past the backstop."""
    timeout_ms = new.claim_lease_ms if new.claim_timeout_ms is None else new.claim_timeout_ms
    return min(new.claim_lease_ms, timeout_ms), timeout_ms


def renewal_applies(
    record: ExecutionRecord, executor_id: str, lease_token: int, now_ms: int
) -> bool:
    """Whether the lease ``lease_token`` of ``executor_id`` on ``record`` may be renewed at
    ``now_ms``: the claim is still the current one, and its lease has not expired yet (an
    expired lease is never brought back, even before anyone expired it). SQL twin:
    ``sql_rules.renewable_sql``, with the owner and token matched by the statement."""
    return (
        record.status is S.RUNNING
        and record.lease_token == lease_token
        and record.executor_id == executor_id
        and record.expires_at_ms is not None
        and record.expires_at_ms >= now_ms
    )


def renewed_expiry(
    now_ms: int, lease_ms: int, timeout_at_ms: int | None, expires_at_ms: int | None
) -> int:
    """The lease end after a renewal at ``now_ms``: ``now + lease_ms``, never past the
    backstop ``timeout_at_ms``. A claim without backstop (made by release 0.1.0) keeps its
    lease end: its lease already was its whole timeout. SQL twin:
    ``sql_rules.renewed_expires_sql``."""
    backstop = timeout_at_ms if timeout_at_ms is not None else expires_at_ms
    if backstop is None:
        return now_ms + lease_ms
    return min(now_ms + lease_ms, backstop)


def expiry_crashes(lease_expiries: int, max_lease_expiries: int | None) -> bool:
    """Whether an execution whose lease already expired ``lease_expiries`` times fails as
    crashed when it expires once more (SQL twin: ``sql_rules.expiry_crashes_sql``)."""
    return max_lease_expiries is not None and lease_expiries + 1 >= max_lease_expiries


def crashed_error(
    task_id: str, execution_id: str, lease_expiries: int
) -> DurableExecutionErrorInfo:
    """The error of an execution failed because its lease expired ``lease_expiries`` times
    (the PostgreSQL backend writes the same text in SQL)."""
    return DurableExecutionErrorInfo(
        message=(
            f"Task {task_id} ({execution_id}) crashed: its executor died {lease_expiries} "
            "times while running it (its lease expired each time); it is not run again"
        ),
        error_type=DurableExecutionErrorType.CRASHED,
        is_retryable=False,
    )


def apply_expiry(record: ExecutionRecord, now_ms: int, max_lease_expiries: int | None) -> None:
    """The lease of the running ``record`` expired: its owner is presumed dead.

    One more lease expiry is counted, owner and lease are cleared and the lease token changes.
    The execution becomes ``ready`` again (no retry attempt used, ``start_at_ms = now``), or
    ``failed`` as crashed once its leases expired ``max_lease_expiries`` times, closed like
    any failed execution.
    """
    crashes = expiry_crashes(record.lease_expiries, max_lease_expiries)
    record.lease_expiries += 1
    record.executor_id = None
    record.lease_token += 1
    record.expires_at_ms = None
    record.updated_at_ms = now_ms
    if crashes:
        record.output = None
        record.error = crashed_error(record.task_id, record.execution_id, record.lease_expiries)
        _finish(record, S.FAILED, now_ms)
    else:
        record.status = S.READY
        record.start_at_ms = now_ms


# -- sleeping executions ---------------------------------------------------------------------


def check_wakeup_status(status: S) -> S:
    """``status`` if a wake-up may write it (``completed`` or ``failed``); else
    :class:`ValueError`, before anything is read or written."""
    if status is not S.COMPLETED and status is not S.FAILED:
        raise ValueError(f"A wake-up completes or fails an execution, got status {status!r}")
    return status


def wakeup_applies(record: ExecutionRecord, status: S) -> bool:
    """Whether a wake-up to ``status`` (``completed`` or ``failed``) may finish ``record``: it
    is still ``sleeping`` (a finished one is left as it is: the first of the wake-ups, the
    timeout and a cancellation wins). A wake-up past the deadline still applies while
    :meth:`~durable_execution.storage.abilities.SleepingExecutions.time_out_sleeping_executions`
    has not timed the execution out."""
    return record.status is S.SLEEPING and status in (S.COMPLETED, S.FAILED)


def apply_wakeup(
    record: ExecutionRecord,
    status: S,
    output: str | None,
    error: DurableExecutionErrorInfo | None,
    now_ms: int,
) -> None:
    """Finish the sleeping ``record`` as woken up: ``completed`` with ``output`` or ``failed``
    with ``error``; its deadline is cleared. Closed like any finished execution (at once for
    a root, by the closure for a child, which then counts in its parent)."""
    record.updated_at_ms = now_ms
    record.expires_at_ms = None
    record.output = output if status is S.COMPLETED else None
    record.error = None if status is S.COMPLETED else error
    _finish(record, status, now_ms)


def sleep_timed_out_error(task_id: str, unique_id: str | None) -> DurableExecutionErrorInfo:
    """The error of a sleeping execution not woken up before its deadline (the PostgreSQL
    backend writes the same text in SQL)."""
    return DurableExecutionErrorInfo(
        message=f"Sleeping task {task_id} ({unique_id}) was not woken up within its timeout",
        error_type=DurableExecutionErrorType.TIMED_OUT,
        is_retryable=False,
    )


def apply_sleep_timeout(record: ExecutionRecord, now_ms: int) -> None:
    """The sleeping ``record``'s deadline passed: ``timed_out``, closed like any finished
    execution."""
    record.updated_at_ms = now_ms
    record.expires_at_ms = None
    record.output = None
    record.error = sleep_timed_out_error(record.task_id, record.unique_id)
    _finish(record, S.TIMED_OUT, now_ms)
