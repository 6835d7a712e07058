"""What the model-based tests check after every step, beside equality with the model.

Each function returns the problems it found as sentences (empty: none), so that one failing
step reports everything that is wrong with it at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields

from durable_execution.status import ALLOWED_TRANSITIONS
from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.records import CloseState, ExecutionRecord
from durable_execution.testing.model.spec import ModelStore

__all__ = [
    "assert_picked",
    "assert_same_records",
    "differences",
    "mismatches",
    "state_problems",
    "transition_problems",
]

_FIELDS = tuple(f.name for f in fields(ExecutionRecord))
_FROZEN_WHEN_FINISHED = ("status", "output", "error", "run_output", "finished_at_ms")
_WAITING = (S.WAITING_FOR_CHILDREN, S.WAITING_FOR_ON_RUN_AND_CHILDREN_COMPLETE)


def differences(expected: ExecutionRecord, actual: ExecutionRecord) -> list[str]:
    """Every field where ``actual`` differs from ``expected``."""
    return [
        f"{actual.execution_id}.{name}: storage has {getattr(actual, name)!r}, "
        f"model has {getattr(expected, name)!r}"
        for name in _FIELDS
        if getattr(actual, name) != getattr(expected, name)
    ]


def mismatches(model: ModelStore, stored: Mapping[str, ExecutionRecord]) -> list[str]:
    """Every difference between the model's executions and the ``stored`` ones."""
    problems: list[str] = []
    for execution_id in model.records:
        if execution_id not in stored:
            problems.append(f"{execution_id} is missing from the storage")
        else:
            problems.extend(differences(model.view(execution_id), stored[execution_id]))
    return problems


def assert_same_records(
    what: str, got: Sequence[ExecutionRecord], expected: Sequence[ExecutionRecord]
) -> None:
    """``what`` returned the ``expected`` records, in order, field by field."""
    got_ids = [r.execution_id for r in got]
    expected_ids = [r.execution_id for r in expected]
    assert got_ids == expected_ids, f"{what} returned {got_ids}, expected {expected_ids}"
    problems = [
        problem
        for mine, theirs in zip(got, expected, strict=True)
        for problem in differences(theirs, mine)
    ]
    assert not problems, f"{what} returned:\n" + "\n".join(problems)


def assert_picked(what: str, got: Sequence[str], candidates: set[str], limit: int) -> None:
    """``what`` returned as many distinct ``candidates`` as ``limit`` allows (any of them:
    the contract leaves the choice to the storage)."""
    assert len(set(got)) == len(got), f"{what} returned duplicates: {got}"
    assert set(got) <= candidates, f"{what} returned {sorted(got)}, not among {sorted(candidates)}"
    assert len(got) == min(limit, len(candidates)), (
        f"{what} returned {len(got)} with limit {limit} and {len(candidates)} due"
    )


def transition_problems(before: ExecutionRecord, after: ExecutionRecord) -> list[str]:
    """What is wrong with the change of one execution between two steps: a status change the
    transitions do not allow, a lease token going back, a finished execution changing."""
    problems: list[str] = []
    name = after.execution_id
    if after.status is not before.status and after.status not in ALLOWED_TRANSITIONS[before.status]:
        problems.append(f"{name} moved {before.status.value} -> {after.status.value}")
    if after.lease_token < before.lease_token:
        problems.append(
            f"{name}: lease token went back {before.lease_token} -> {after.lease_token}"
        )
    if before.is_finished:
        problems.extend(
            f"{name} is finished but its {field} changed: "
            f"{getattr(before, field)!r} -> {getattr(after, field)!r}"
            for field in _FROZEN_WHEN_FINISHED
            if getattr(before, field) != getattr(after, field)
        )
    return problems


def state_problems(records: Mapping[str, ExecutionRecord]) -> list[str]:
    """What is wrong with the executions as they stand (the storage's own view, read with
    ``get_executions``): owners and leases against statuses, closure against finished
    children, and the children counters of unfinished parents."""
    problems: list[str] = []
    for record in records.values():
        problems.extend(_lease_problems(record))
        problems.extend(_closure_problems(record, records))
        if record.status in _WAITING:
            problems.extend(_counter_problems(record, records))
    return problems


def _lease_problems(record: ExecutionRecord) -> list[str]:
    name, status = record.execution_id, record.status
    if status is S.RUNNING and (record.executor_id is None or record.expires_at_ms is None):
        return [f"{name} is running without an owner or a lease"]
    if status is S.READY and (record.executor_id is not None or record.expires_at_ms is not None):
        return [f"{name} is ready but keeps an owner or a lease"]
    if status is not S.RUNNING and record.stop_requested and status is not S.CANCELLED:
        return [f"{name} is {status.value} and flagged for its owner to stop"]
    if record.is_finished and record.expires_at_ms is not None:
        return [f"{name} is finished and keeps a lease"]
    if record.is_finished is (record.close_state is CloseState.OPEN):
        return [f"{name} is {status.value} with close state {record.close_state.value}"]
    return []


def _children_of(
    record: ExecutionRecord, records: Mapping[str, ExecutionRecord]
) -> list[ExecutionRecord]:
    ids = list(record.child_execution_ids)
    if record.completion_execution_id is not None:
        ids.append(record.completion_execution_id)
    return [records[i] for i in ids if i in records]


def _closure_problems(record: ExecutionRecord, records: Mapping[str, ExecutionRecord]) -> list[str]:
    """A closed, finished execution has no unfinished child left."""
    if not (record.is_finished and record.is_closed):
        return []
    return [
        f"{record.execution_id} is {record.status.value} and closed, but its child "
        f"{child.execution_id} is {child.status.value}"
        for child in _children_of(record, records)
        if not child.is_finished
    ]


def _counter_problems(record: ExecutionRecord, records: Mapping[str, ExecutionRecord]) -> list[str]:
    """An unfinished parent counts as unfinished its children not closed yet, and as failed
    its closed children that did not complete."""
    children = _children_of(record, records)
    unfinished = sum(not child.is_closed for child in children)
    failed = sum(
        child.is_closed and child.status is not S.COMPLETED and not child.is_completion
        for child in children
    )
    if (record.unfinished_children, record.failed_children) == (unfinished, failed):
        return []
    return [
        f"{record.execution_id} ({record.status.value}) counts {record.unfinished_children} "
        f"unfinished and {record.failed_children} failed children; its children say "
        f"{unfinished} and {failed}"
    ]
