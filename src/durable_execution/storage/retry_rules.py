"""The state changes of an operator's retry (``executor.retry_execution``), as pure functions.

The companion of :mod:`durable_execution.storage.transitions` for the one change that takes
finished executions back: every backend loads the tree (the root and all its descendants),
asks :func:`retry_refusal` whether it may (:func:`check_retryable` raises the refusal),
applies :func:`reopen_tree` to its records and
writes back the records it returns, in one transaction. The rules live here only; the SQL
backends run them in Python on the rows they locked.

What a retry does, from the root down (``completed`` executions and their subtrees are never
touched: they keep their outputs and are not run again):

- an execution that ran no children (a leaf, or a parent that failed in its run) goes back
  to ``ready``: it runs again. Like a retry after a failed attempt, ``retry_attempts`` grows
  by one and ``error`` keeps the previous attempt's error until the execution finishes again
  (the history an operator reads); the task's retry policy is not renewed, so when its
  attempts were used up, the next failure ends it. ``lease_expiries`` starts again at zero
  (an execution failed as ``crashed`` would otherwise crash at its first expiry).
- a sleeping task's execution goes back to ``sleeping``, with a fresh deadline as long as its
  first one (its unique id must be free again).
- a parent that had children goes back to ``waiting_for_children``: its unsuccessful children
  are reopened the same way, its completed ones kept, and it waits for the reopened ones
  (``failed_children`` back to 0). With none reopened it moves on at once (the advance work).
- a parent that had reached its completion task goes back to
  ``waiting_for_on_run_and_children_complete`` and its completion task is reopened; its
  children are left as they are (the completion task already had their results). When that
  completion task had completed (the parent was cancelled meanwhile), the parent completes
  with its output.

Every reopened execution gets a new lease token (a stale outcome can never apply), no owner,
no stop request, ``close_state`` ``open`` and no ``finished_at``; ``updated_at`` is now.
"""

from __future__ import annotations

from collections.abc import Iterable

from durable_execution.errors import DuplicateUniqueIdError, ExecutionNotRetryableError
from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.records import CloseState, ExecutionRecord

__all__ = ["check_retryable", "reopen_tree", "retry_refusal", "unique_id_taken"]


def _is_final(record: ExecutionRecord) -> bool:
    return (
        record.is_finished and record.close_state is CloseState.CLOSED and not record.stop_requested
    )


def retry_refusal(root: ExecutionRecord, tree: Iterable[ExecutionRecord]) -> tuple[str, str] | None:
    """``(reason, message)`` when ``root`` may not be retried (see
    :class:`~durable_execution.errors.ExecutionNotRetryableError` for the reasons); ``None``
    when it may. ``tree`` is every execution under ``root`` (the root may be among them)."""
    execution_id = root.execution_id
    if root.parent_execution_id is not None:
        return (
            "not_root",
            f"Execution {execution_id} is not a root (its root is {root.root_execution_id}); "
            "retry the root: a tree is retried whole",
        )
    if root.status is S.COMPLETED:
        return "completed", f"Execution {execution_id} completed: there is nothing to retry"
    if not root.is_finished:
        return (
            "unfinished",
            f"Execution {execution_id} is {root.status.value}, not finished: only a finished, "
            "unsuccessful root can be retried (cancel it first to start it over)",
        )
    if not all(_is_final(record) for record in (root, *tree)):
        return (
            "settling",
            f"Execution {execution_id} finished, but some of its executions are still being "
            "cancelled or closed; try again in a moment",
        )
    return None


def check_retryable(root: ExecutionRecord, tree: Iterable[ExecutionRecord]) -> None:
    """Raise :class:`~durable_execution.errors.ExecutionNotRetryableError` with the reason of
    :func:`retry_refusal`, when there is one."""
    refusal = retry_refusal(root, tree)
    if refusal is not None:
        reason, message = refusal
        raise ExecutionNotRetryableError(message, execution_id=root.execution_id, reason=reason)


def unique_id_taken(execution_id: str, cause: Exception) -> DuplicateUniqueIdError:
    """The error of a retry of ``execution_id`` whose store refused a reopened sleeping
    execution's unique id (``cause``: the store's own error), taken meanwhile by another."""
    return DuplicateUniqueIdError(
        f"Cannot retry {execution_id}: a sleeping execution in it has a unique id another "
        f"sleeping execution took meanwhile ({cause})"
    )


def reopen_tree(
    records: Iterable[ExecutionRecord], root_execution_id: str, now_ms: int
) -> list[ExecutionRecord]:
    """Reopen the unsuccessful executions of the tree of ``root_execution_id`` (see the
    module docstring), changing ``records`` in place; returns the changed ones, root first.

    ``records`` are the root and all its descendants, as stored; :func:`retry_refusal` must
    have accepted them.
    """
    by_id = {record.execution_id: record for record in records}
    children: dict[str, list[ExecutionRecord]] = {}
    for record in by_id.values():
        if record.parent_execution_id is not None and not record.is_completion:
            children.setdefault(record.parent_execution_id, []).append(record)
    changed: list[ExecutionRecord] = []

    def reopen(record: ExecutionRecord) -> bool:
        """Reopen ``record`` if it did not complete; whether it is now unfinished."""
        if record.status is S.COMPLETED:
            return False
        changed.append(record)
        completion = (
            by_id.get(record.completion_execution_id)
            if record.completion_execution_id is not None
            else None
        )
        kids = sorted(children.get(record.execution_id, ()), key=lambda r: r.index_in_parent)
        if completion is not None and completion.status is S.COMPLETED:
            _complete_from(record, completion, now_ms)
            return False
        if completion is not None:
            reopen(completion)
            record.status = S.WAITING_FOR_ON_RUN_AND_CHILDREN_COMPLETE
            record.unfinished_children = 1
        elif kids:
            record.status = S.WAITING_FOR_CHILDREN
            record.unfinished_children = sum(reopen(kid) for kid in kids)
        elif record.unique_id is not None:
            record.status = S.SLEEPING
            first_timeout = (record.timeout_at_ms or record.created_at_ms) - record.created_at_ms
            record.expires_at_ms = record.timeout_at_ms = now_ms + max(0, first_timeout)
        else:
            record.status = S.READY
            record.start_at_ms = now_ms
            record.retry_attempts += 1
        _reset(record, now_ms)
        return True

    root = by_id[root_execution_id]
    reopen(root)
    return changed


def _reset(record: ExecutionRecord, now_ms: int) -> None:
    """What every reopened execution gets (its ``error`` is kept: the previous attempt's)."""
    record.failed_children = 0
    record.output = None
    record.finished_at_ms = None
    record.close_state = CloseState.OPEN
    record.stop_requested = False
    record.executor_id = None
    record.lease_token += 1
    if record.status is not S.SLEEPING:
        record.expires_at_ms = None
    record.lease_expiries = 0
    record.updated_at_ms = now_ms


def _complete_from(record: ExecutionRecord, completion: ExecutionRecord, now_ms: int) -> None:
    """``record``'s completion task completed after ``record`` was cancelled: it completes."""
    record.status = S.COMPLETED
    record.output = completion.output
    record.error = None
    record.unfinished_children = 0
    record.failed_children = 0
    record.finished_at_ms = now_ms
    record.updated_at_ms = now_ms
    record.lease_token += 1
    record.executor_id = None
    record.expires_at_ms = None
    record.stop_requested = False
    record.close_state = CloseState.CLOSED
