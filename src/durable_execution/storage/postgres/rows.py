"""Between Python records and PostgreSQL rows: column lists, row decoding, array parameters.

Batched statements take their rows as parallel arrays (one per column) and ``unnest`` them,
so a batch of any size is one statement with a fixed text (and one prepared plan).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from durable_execution.errors import DurableExecutionErrorInfo
from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.records import (
    ChildResult,
    ExecutionOutcome,
    NewExecution,
)
from durable_execution.storage.rows import COLUMNS, error_from_json, record_from_row

__all__ = [
    "COLUMNS",
    "OUTCOME_FINISH",
    "OUTCOME_RETRY",
    "OUTCOME_WAIT_CHILDREN",
    "OUTCOME_WAIT_FINALIZE",
    "children_from_json",
    "error_json",
    "finish_batch",
    "insert_batch",
    "json_ids",
    "new_execution_params",
    "outcome_params",
    "record_from_row",
    "succeed_batch",
]


# What an outcome does, as the ``kind`` column of the batched update.
OUTCOME_RETRY = 0
OUTCOME_WAIT_CHILDREN = 1
OUTCOME_WAIT_FINALIZE = 2
OUTCOME_FINISH = 3


def error_json(error: DurableExecutionErrorInfo | None) -> str | None:
    """The stored form of an error (``None`` stays ``None``)."""
    return None if error is None else error.to_json()


def children_from_json(data: Any) -> list[ChildResult]:
    """Decode the ``json_agg`` of ``[id, task_id, status, output, error]`` arrays."""
    if not data:
        return []
    if isinstance(data, str):
        data = json.loads(data)
    return [
        ChildResult(execution_id, task_id, S(status), output, error_from_json(error))
        for execution_id, task_id, status, output, error in data
    ]


def new_execution_params(
    executions: Sequence[NewExecution], prefix: str = ""
) -> dict[str, list[Any]]:
    """The array parameters of an ``INSERT`` of new rows, named ``{prefix}ids`` and so on."""
    return {
        f"{prefix}ids": [e.execution_id for e in executions],
        f"{prefix}task_ids": [e.task_id for e in executions],
        f"{prefix}inputs": [e.input for e in executions],
        f"{prefix}roots": [e.root_execution_id for e in executions],
        f"{prefix}parents": [e.parent_execution_id for e in executions],
        f"{prefix}indexes": [e.index_in_parent for e in executions],
        f"{prefix}finalizes": [e.is_finalize for e in executions],
        f"{prefix}priorities": [e.priority for e in executions],
        f"{prefix}keys": [e.idempotency_key for e in executions],
        f"{prefix}start_ats": [e.start_at_ms for e in executions],
        f"{prefix}claimed_by": [e.claimed_by for e in executions],
        f"{prefix}claim_leases": [e.claim_lease_ms for e in executions],
    }


def _outcome_values(outcome: ExecutionOutcome, now_ms: int) -> tuple[Any, ...]:
    """``(kind, output, error, start_at, n_children, finalize_id)`` of one outcome."""
    status = outcome.status
    if status is S.READY:
        start_at = outcome.start_at_ms if outcome.start_at_ms is not None else now_ms
        return OUTCOME_RETRY, None, error_json(outcome.error), start_at, 0, None
    if status is S.WAITING_FOR_CHILDREN:
        return OUTCOME_WAIT_CHILDREN, None, None, None, len(outcome.children), None
    if status is S.WAITING_FOR_ON_RUN_AND_CHILDREN_COMPLETE:
        finalize_id = outcome.children[0].execution_id if outcome.children else None
        return OUTCOME_WAIT_FINALIZE, None, None, None, 1, finalize_id
    if status is S.COMPLETED:
        return OUTCOME_FINISH, outcome.output, None, None, 0, None
    return OUTCOME_FINISH, None, error_json(outcome.error), None, 0, None


def finish_batch(outcomes: Sequence[tuple[int, ExecutionOutcome]]) -> str:
    """The JSON batch of the ``finish`` statement: ``(ord, outcome)`` pairs of outcomes that
    finish their execution without children."""
    return _json(
        [
            {
                "ord": ord_,
                "execution_id": o.execution_id,
                "lease_token": o.lease_token,
                "expected": o.expected_status.value,
                "status": o.status.value,
                "output": o.output if o.status is S.COMPLETED else None,
                "run_output": o.run_output,
                "error": None if o.status is S.COMPLETED else error_json(o.error),
            }
            for ord_, o in outcomes
        ]
    )


def succeed_batch(outcomes: Sequence[tuple[int, ExecutionOutcome]]) -> str:
    """The JSON batch of the ``succeed`` statement: ``(ord, outcome)`` pairs of completed
    outcomes with a successor."""
    rows = []
    for ord_, o in outcomes:
        n = o.successor
        assert n is not None
        rows.append(
            {
                "ord": ord_,
                "execution_id": o.execution_id,
                "lease_token": o.lease_token,
                "expected": o.expected_status.value,
                "output": o.output,
                "run_output": o.run_output,
                "s_id": n.execution_id,
                "s_task_id": n.task_id,
                "s_input": n.input,
                "s_root": n.root_execution_id,
                "s_parent": n.parent_execution_id,
                "s_index": n.index_in_parent,
                "s_priority": n.priority,
                "s_start_at": n.start_at_ms,
                "s_claimed_by": n.claimed_by,
                "s_claim_lease": n.claim_lease_ms,
            }
        )
    return _json(rows)


def insert_batch(executions: Sequence[NewExecution]) -> str:
    """The JSON batch of the ``insert_plain`` statement (executions without idempotency key)."""
    return _json(
        [
            {
                "execution_id": e.execution_id,
                "task_id": e.task_id,
                "input": e.input,
                "root_execution_id": e.root_execution_id,
                "parent_execution_id": e.parent_execution_id,
                "index_in_parent": e.index_in_parent,
                "is_finalize": e.is_finalize,
                "priority": e.priority,
                "start_at": e.start_at_ms,
                "claimed_by": e.claimed_by,
                "claim_lease": e.claim_lease_ms,
            }
            for e in executions
        ]
    )


_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def json_ids(ids: Sequence[str]) -> str:
    """A list of execution ids as one JSON parameter."""
    return _json(list(ids))


def outcome_params(outcomes: Sequence[tuple[int, ExecutionOutcome]], now_ms: int) -> dict[str, Any]:
    """The parameters of the ``record_outcomes`` statement for ``(ord, outcome)`` pairs: the
    outcomes' arrays, and their children's (``c_...``, each with its outcome's ``ord``)."""
    values = [_outcome_values(outcome, now_ms) for _, outcome in outcomes]
    children = [(ord_, child) for ord_, outcome in outcomes for child in outcome.children]
    return {
        "now": now_ms,
        "ords": [ord_ for ord_, _ in outcomes],
        "ids": [o.execution_id for _, o in outcomes],
        "tokens": [o.lease_token for _, o in outcomes],
        "expected": [o.expected_status.value for _, o in outcomes],
        "statuses": [o.status.value for _, o in outcomes],
        "run_outputs": [o.run_output for _, o in outcomes],
        "kinds": [v[0] for v in values],
        "outputs": [v[1] for v in values],
        "errors": [v[2] for v in values],
        "start_ats": [v[3] for v in values],
        "counts": [v[4] for v in values],
        "finalize_ids": [v[5] for v in values],
        **new_execution_params([child for _, child in children], "c_"),
        "c_owners": [ord_ for ord_, _ in children],
    }
