"""How batches are shaped for the PostgreSQL statements, and what an applied outcome tells."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.records import CloseState, ExecutionOutcome, NewExecution, WorkKind
from durable_execution.storage.transitions import claim_times, work_created

__all__ = ["claim_params", "first_of_each_key", "lease_arrays", "rounds", "work_created_by"]


def rounds(outcomes: Sequence[ExecutionOutcome]) -> list[list[tuple[int, ExecutionOutcome]]]:
    """Split outcomes so that no execution appears twice in one statement, keeping their order
    per execution; each round is sorted by execution id (one lock order for all writers)."""
    rounds: list[list[tuple[int, ExecutionOutcome]]] = []
    seen: dict[str, int] = {}
    for index, outcome in enumerate(outcomes):
        depth = seen.get(outcome.execution_id, 0)
        seen[outcome.execution_id] = depth + 1
        if depth == len(rounds):
            rounds.append([])
        rounds[depth].append((index, outcome))
    for batch in rounds:
        batch.sort(key=lambda item: item[1].execution_id)
    return rounds


def first_of_each_key(
    executions: Sequence[NewExecution],
) -> tuple[list[NewExecution], dict[str, str]]:
    """The executions to insert (the first one of each idempotency key), and key → its id."""
    fresh: list[NewExecution] = []
    first_by_key: dict[str, str] = {}
    for new in executions:
        key = new.idempotency_key
        if key is not None:
            if key in first_by_key:
                continue
            first_by_key[key] = new.execution_id
        fresh.append(new)
    return fresh, first_by_key


def work_created_by(outcome: ExecutionOutcome, row: tuple[str, str, int, int]) -> set[WorkKind]:
    """The kinds of work an applied outcome created (for wake-ups), from the execution's new
    ``(status, close_state, unfinished_children, failed_children)``."""
    status, close_state, unfinished, failed = row
    return work_created(
        S(status),
        CloseState(close_state),
        unfinished,
        failed,
        inserted_ready=any(child.claimed_by is None for child in outcome.children),
    )


def claim_params(
    lease_ms_by_task: Mapping[str, int], lease_ms: int | None, max_suspects: int | None
) -> dict[str, Any]:
    """The task ids, leases, backstops and suspect limit of the ``claim_ready`` statement
    (each task's lease and backstop, as offsets from now, by ``transitions.claim_times``)."""
    times = [claim_times(0, timeout, lease_ms) for timeout in lease_ms_by_task.values()]
    return {
        "task_ids": list(lease_ms_by_task),
        "leases": [expires for expires, _ in times],
        "timeouts": [timeout for _, timeout in times],
        "max_suspects": None if max_suspects is None else max(0, max_suspects),
    }


def lease_arrays(leases: Sequence[tuple[str, int]]) -> dict[str, list[Any]]:
    """``(execution id, lease token)`` pairs as the arrays ``ords`` (the index of each pair's
    first appearance), ``ids`` and ``tokens``, once each, in id order (one lock order)."""
    first: dict[tuple[str, int], int] = {}
    for index, lease in enumerate(leases):
        first.setdefault(lease, index)
    unique = sorted(first.items())
    return {
        "ords": [index for _, index in unique],
        "ids": [execution_id for (execution_id, _), _ in unique],
        "tokens": [token for (_, token), _ in unique],
    }
