"""The range of the integers a storage keeps, checked before anything is written.

Times, priorities and lease tokens are signed 64-bit integers in SQLite (``INTEGER``) and
PostgreSQL (``bigint``). A value outside that range used to fail differently on each backend
(SQLite: a raw ``OverflowError`` when binding it, or a silent conversion to a float when a sum
overflows in SQL; PostgreSQL: ``bigint out of range``; memory: stored as it is). Every backend
now checks the values of an operation here first and refuses the whole operation with a
:class:`~durable_execution.errors.DurableStorageError` (not transient: trying again cannot
help), changing nothing.

The executor never sends such values (its options and enqueue arguments are bounded, see
:mod:`durable_execution.checks`); this is the storage's own guard against any other caller.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from durable_execution.errors import DurableStorageError
from durable_execution.storage.records import ExecutionOutcome, NewExecution

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "check_lease",
    "check_leases",
    "check_new_executions",
    "check_outcomes",
]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def _refuse(what: str, value: int) -> DurableStorageError:
    return DurableStorageError(
        f"Cannot store {what}={value}: outside the signed 64-bit range the storage keeps "
        f"({INT64_MIN} to {INT64_MAX})"
    )


def check_new_executions(executions: Iterable[NewExecution], now_ms: int) -> None:
    """Raise :class:`DurableStorageError` when a new execution's priority, start time or
    (inserted claimed) lease end is out of range."""
    for new in executions:
        if not INT64_MIN <= new.priority <= INT64_MAX:
            raise _refuse("priority", new.priority)
        if not INT64_MIN <= new.start_at_ms <= INT64_MAX:
            raise _refuse("start_at_ms", new.start_at_ms)
        if new.claimed_by is not None:
            check_lease(now_ms, new.claim_lease_ms)
            if new.claim_timeout_ms is not None:
                check_lease(now_ms, new.claim_timeout_ms)


def check_lease(now_ms: int, lease_ms: int) -> None:
    """Raise :class:`DurableStorageError` when a lease taken now ends out of range."""
    if not INT64_MIN <= now_ms + lease_ms <= INT64_MAX:
        raise _refuse("expires_at_ms", now_ms + lease_ms)


def check_leases(now_ms: int, lease_ms_by_task: Mapping[str, int]) -> None:
    """:func:`check_lease` for each task's lease of a claim."""
    if lease_ms_by_task:
        check_lease(now_ms, max(lease_ms_by_task.values()))
        check_lease(now_ms, min(lease_ms_by_task.values()))


def check_outcomes(outcomes: Iterable[ExecutionOutcome], now_ms: int) -> None:
    """Raise :class:`DurableStorageError` when an outcome's retry time, or an execution it
    inserts, is out of range."""
    for outcome in outcomes:
        start_at = outcome.start_at_ms
        if start_at is not None and not INT64_MIN <= start_at <= INT64_MAX:
            raise _refuse("start_at_ms", start_at)
        if outcome.children or outcome.successor is not None:
            check_new_executions(outcome.inserted(), now_ms)
