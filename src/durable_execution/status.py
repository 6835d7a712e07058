"""Execution statuses and the transitions allowed between them, as data.

The transitions are the seed's two diagrams plus cancellation, retries and crash recovery:

- ``ready → running`` when an executor claims it; ``running → ready`` on a retry, or when the
  owner's lease expired (crash recovery), or when a shutting-down executor releases it.
- ``running → failed | timed_out | completed`` when the run function returns or raises;
  ``running → failed`` also when its lease expired ``max_lease_expiries`` times (its process
  kept dying: the error type ``crashed``).
- ``running → waiting_for_children`` when a parent returned children,
  ``running → waiting_for_on_run_and_children_complete`` when it returned none but has a
  completion task.
- ``waiting_for_children → children_failed | completed | waiting_for_on_run_and_children_complete``,
  or ``failed`` when the children's outputs cannot be combined (a serializer error).
- ``waiting_for_on_run_and_children_complete → completed | on_run_and_children_complete_failed``.
- ``sleeping → completed | failed`` when woken up (``wakeup_sleeping_task_execution``),
  ``→ timed_out`` when not woken up within its timeout (the storage's expiry work). A
  sleeping execution is never claimed: it is inserted ``sleeping``, never ``ready``.
- every unfinished status ``→ cancelled``.

Finished statuses are never left by the executors' work. The one exception is an operator's
retry of a whole tree (``executor.retry_execution``), which takes the executions that did not
complete back to ``ready``, ``sleeping`` or a waiting status; it is not part of
:data:`ALLOWED_TRANSITIONS` (which every other write is checked against) and has its rules in
:mod:`durable_execution.storage.retry_rules`.
"""

from __future__ import annotations

import enum

__all__ = [
    "ALLOWED_TRANSITIONS",
    "FINISHED_STATUSES",
    "DurableTaskExecutionStatus",
    "is_transition_allowed",
]


class DurableTaskExecutionStatus(enum.StrEnum):
    """The status of one task execution. The values are stored as they are."""

    READY = "ready"
    RUNNING = "running"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    WAITING_FOR_CHILDREN = "waiting_for_children"
    CHILDREN_FAILED = "children_failed"
    WAITING_FOR_ON_RUN_AND_CHILDREN_COMPLETE = "waiting_for_on_run_and_children_complete"
    ON_RUN_AND_CHILDREN_COMPLETE_FAILED = "on_run_and_children_complete_failed"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    SLEEPING = "sleeping"

    @property
    def is_finished(self) -> bool:
        """True for the six statuses an execution never leaves."""
        return self in FINISHED_STATUSES


_S = DurableTaskExecutionStatus

FINISHED_STATUSES: frozenset[DurableTaskExecutionStatus] = frozenset(
    {
        _S.COMPLETED,
        _S.FAILED,
        _S.TIMED_OUT,
        _S.CHILDREN_FAILED,
        _S.ON_RUN_AND_CHILDREN_COMPLETE_FAILED,
        _S.CANCELLED,
    }
)

ALLOWED_TRANSITIONS: dict[DurableTaskExecutionStatus, frozenset[DurableTaskExecutionStatus]] = {
    _S.READY: frozenset({_S.RUNNING, _S.CANCELLED}),
    _S.RUNNING: frozenset(
        {
            _S.READY,
            _S.FAILED,
            _S.TIMED_OUT,
            _S.COMPLETED,
            _S.WAITING_FOR_CHILDREN,
            _S.WAITING_FOR_ON_RUN_AND_CHILDREN_COMPLETE,
            _S.CANCELLED,
        }
    ),
    _S.WAITING_FOR_CHILDREN: frozenset(
        {
            _S.CHILDREN_FAILED,
            _S.COMPLETED,
            _S.WAITING_FOR_ON_RUN_AND_CHILDREN_COMPLETE,
            _S.FAILED,
            _S.CANCELLED,
        }
    ),
    _S.WAITING_FOR_ON_RUN_AND_CHILDREN_COMPLETE: frozenset(
        {_S.COMPLETED, _S.ON_RUN_AND_CHILDREN_COMPLETE_FAILED, _S.CANCELLED}
    ),
    _S.SLEEPING: frozenset({_S.COMPLETED, _S.FAILED, _S.TIMED_OUT, _S.CANCELLED}),
    **{status: frozenset() for status in FINISHED_STATUSES},
}


def is_transition_allowed(
    current: DurableTaskExecutionStatus, new: DurableTaskExecutionStatus
) -> bool:
    """Whether an execution in ``current`` may move to ``new``."""
    return new in ALLOWED_TRANSITIONS[current]
