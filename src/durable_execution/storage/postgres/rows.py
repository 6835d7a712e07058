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
from durable_execution.storage.transitions import inserted_claim

__all__ = [
    "COLUMNS",
    "FINISH_FIELDS",
    "INSERT_FIELDS",
    "SLEEPING_INSERT_FIELDS",
    "SUCCEED_FIELDS",
    "OUTCOME_FINISH",
    "OUTCOME_RETRY",
    "OUTCOME_WAIT_CHILDREN",
    "OUTCOME_WAIT_COMPLETION",
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
OUTCOME_WAIT_COMPLETION = 2
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
    claims = [inserted_claim(e) for e in executions]
    return {
        f"{prefix}ids": [e.execution_id for e in executions],
        f"{prefix}task_ids": [e.task_id for e in executions],
        f"{prefix}inputs": [e.input for e in executions],
        f"{prefix}roots": [e.root_execution_id for e in executions],
        f"{prefix}parents": [e.parent_execution_id for e in executions],
        f"{prefix}indexes": [e.index_in_parent for e in executions],
        f"{prefix}completions": [e.is_completion for e in executions],
        f"{prefix}priorities": [e.priority for e in executions],
        f"{prefix}keys": [e.idempotency_key for e in executions],
        f"{prefix}start_ats": [e.start_at_ms for e in executions],
        f"{prefix}claimed_by": [e.claimed_by for e in executions],
        f"{prefix}claim_leases": [claim[0] for claim in claims],
        f"{prefix}attributes": [e.attributes for e in executions],
        f"{prefix}claim_timeouts": [claim[1] for claim in claims],
        f"{prefix}unique_ids": [e.unique_id for e in executions],
        f"{prefix}sleep_timeouts": [e.sleep_timeout_ms for e in executions],
    }


def _outcome_values(outcome: ExecutionOutcome, now_ms: int) -> tuple[Any, ...]:
    """``(kind, output, error, start_at, n_children, completion_id)`` of one outcome."""
    status = outcome.status
    if status is S.READY:
        start_at = outcome.start_at_ms if outcome.start_at_ms is not None else now_ms
        return OUTCOME_RETRY, None, error_json(outcome.error), start_at, 0, None
    if status is S.WAITING_FOR_CHILDREN:
        return OUTCOME_WAIT_CHILDREN, None, None, None, len(outcome.children), None
    if status is S.WAITING_FOR_ON_RUN_AND_CHILDREN_COMPLETE:
        completion_id = outcome.children[0].execution_id if outcome.children else None
        return OUTCOME_WAIT_COMPLETION, None, None, None, 1, completion_id
    if status is S.COMPLETED:
        return OUTCOME_FINISH, outcome.output, None, None, 0, None
    return OUTCOME_FINISH, None, error_json(outcome.error), None, 0, None


# The JSON batches: one JSON array per row, its values in the order of these (name, SQL type)
# fields; queries.py decodes them with ``jsonb_array_elements`` (see ``_json_rows`` there).
# Arrays, not objects: a third of the size, three times faster to encode, faster to decode.
FINISH_FIELDS = (
    ("ord", "int"),
    ("execution_id", "text"),
    ("lease_token", "bigint"),
    ("expected", "text"),
    ("status", "text"),
    ("output", "text"),
    ("run_output", "text"),
    ("error", "text"),
)
SUCCEED_FIELDS = (
    ("ord", "int"),
    ("execution_id", "text"),
    ("lease_token", "bigint"),
    ("expected", "text"),
    ("output", "text"),
    ("run_output", "text"),
    ("s_id", "text"),
    ("s_task_id", "text"),
    ("s_input", "text"),
    ("s_root", "text"),
    ("s_parent", "text"),
    ("s_index", "int"),
    ("s_priority", "bigint"),
    ("s_start_at", "bigint"),
    ("s_claimed_by", "text"),
    ("s_claim_lease", "bigint"),
    ("s_claim_timeout", "bigint"),
    ("s_attributes", "text"),
)
INSERT_FIELDS = (
    ("execution_id", "text"),
    ("task_id", "text"),
    ("input", "text"),
    ("root_execution_id", "text"),
    ("parent_execution_id", "text"),
    ("index_in_parent", "int"),
    ("is_finalize", "boolean"),
    ("priority", "bigint"),
    ("start_at", "bigint"),
    ("claimed_by", "text"),
    ("claim_lease", "bigint"),
    ("claim_timeout", "bigint"),
    ("attributes", "text"),
)
SLEEPING_INSERT_FIELDS = (*INSERT_FIELDS, ("unique_id", "text"), ("sleep_timeout", "bigint"))
"""The fields of a batch with sleeping executions (``insert_plain_sleeping``): the common
batch, without them, stays two JSON fields a row shorter (measured: its insert a tenth
faster)."""


def finish_batch(outcomes: Sequence[tuple[int, ExecutionOutcome]]) -> str:
    """The JSON batch (:data:`FINISH_FIELDS`) of the ``finish`` statement: ``(ord, outcome)``
    pairs of outcomes that finish their execution without children."""
    return _json(
        [
            [
                ord_,
                o.execution_id,
                o.lease_token,
                o.expected_status.value,
                o.status.value,
                o.output if o.status is S.COMPLETED else None,
                o.run_output,
                None if o.status is S.COMPLETED else error_json(o.error),
            ]
            for ord_, o in outcomes
        ]
    )


def succeed_batch(outcomes: Sequence[tuple[int, ExecutionOutcome]]) -> str:
    """The JSON batch (:data:`SUCCEED_FIELDS`) of the ``succeed`` statement: ``(ord, outcome)``
    pairs of completed outcomes with a successor."""
    rows = []
    for ord_, o in outcomes:
        n = o.successor
        assert n is not None
        rows.append(
            [
                ord_,
                o.execution_id,
                o.lease_token,
                o.expected_status.value,
                o.output,
                o.run_output,
                n.execution_id,
                n.task_id,
                n.input,
                n.root_execution_id,
                n.parent_execution_id,
                n.index_in_parent,
                n.priority,
                n.start_at_ms,
                n.claimed_by,
                *inserted_claim(n),
                n.attributes,
            ]
        )
    return _json(rows)


def insert_batch(executions: Sequence[NewExecution], *, sleeping: bool = False) -> str:
    """The JSON batch (:data:`INSERT_FIELDS`, or with ``sleeping``
    :data:`SLEEPING_INSERT_FIELDS`) of the ``insert_plain`` statement (executions without
    idempotency key), or of ``insert_plain_sleeping``."""
    return _json(
        [
            [
                e.execution_id,
                e.task_id,
                e.input,
                e.root_execution_id,
                e.parent_execution_id,
                e.index_in_parent,
                e.is_completion,
                e.priority,
                e.start_at_ms,
                e.claimed_by,
                *inserted_claim(e),
                e.attributes,
                *((e.unique_id, e.sleep_timeout_ms) if sleeping else ()),
            ]
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
        "completion_ids": [v[5] for v in values],
        "policies": [o.children_policy for _, o in outcomes],
        **new_execution_params([child for _, child in children], "c_"),
        "c_owners": [ord_ for ord_, _ in children],
    }
