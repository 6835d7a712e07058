"""The specification side of the model-based tests: executions as the contract says they must be.

:class:`ModelStore` holds plain :class:`ExecutionRecord` objects and changes them only with the
pure rules of :mod:`durable_execution.storage.transitions` (and the orders and filters the
protocol's docstrings state). It is slow and obvious on purpose: no index, no heap, a scan
and a sort per operation, so that it reads as the contract rather than as a backend.

Where the contract leaves a choice to the storage (which executions a batch of closures,
expiries or cancellations takes when more are due than ``limit``), the model does not guess:
it offers the candidates, and the machine applies the storage's own choice after checking
that it is one the contract allows.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from durable_execution.errors import DuplicateExecutionError, DurableExecutionErrorInfo
from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.records import (
    ChildResult,
    CloseState,
    ExecutionOutcome,
    ExecutionRecord,
    NewExecution,
    ParentToAdvance,
)
from durable_execution.storage.transitions import (
    apply_close,
    apply_expiry,
    apply_outcome,
    apply_outcome_close,
    apply_successor,
    cancel_record,
    cancelled_child_error,
    claim_times,
    is_advanceable,
    is_suspect,
    new_record,
    outcome_applies,
    renewal_applies,
    renewed_expiry,
)

__all__ = ["ModelStore"]


class ModelStore:
    """The executions a correct storage holds after the same operations."""

    def __init__(self) -> None:
        self.records: dict[str, ExecutionRecord] = {}
        self.children: dict[str, list[str]] = {}  # without completion tasks, in index order
        self.keys: dict[str, str] = {}

    def copy(self) -> ModelStore:
        """An independent copy (records are copied; their fields are immutable values)."""
        other = ModelStore()
        other.records = {i: r.copy() for i, r in self.records.items()}
        other.children = {i: list(c) for i, c in self.children.items()}
        other.keys = dict(self.keys)
        return other

    def view(self, execution_id: str) -> ExecutionRecord:
        """The execution as ``get_executions`` must return it (children filled in)."""
        record = self.records[execution_id].copy()
        record.child_execution_ids = tuple(self.children.get(execution_id, ()))
        return record

    def has(self, **fields: object) -> bool:
        """Whether some execution has these field values (for the machine's preconditions:
        a step that cannot find anything to do is a step wasted)."""
        return any(
            all(getattr(r, name) == value for name, value in fields.items())
            for r in self.records.values()
        )

    def finished_ids(self) -> set[str]:
        return {i for i, r in self.records.items() if r.is_finished}

    # -- insert_executions -----------------------------------------------------------------

    def insert(self, executions: Sequence[NewExecution], now_ms: int) -> list[str]:
        """Idempotency keys first (a stored key, or one earlier in the batch, wins and
        nothing is inserted for it); then the rest, all or none, and a duplicate id raises."""
        ids: list[str] = []
        fresh: list[NewExecution] = []
        batch_keys: dict[str, str] = {}
        for new in executions:
            key = new.idempotency_key
            stored = None if key is None else self.keys.get(key, batch_keys.get(key))
            if stored is not None:
                ids.append(stored)
                continue
            if key is not None:
                batch_keys[key] = new.execution_id
            fresh.append(new)
            ids.append(new.execution_id)
        self._check_new_ids(fresh)
        for new in fresh:
            self._add(new, now_ms)
        return ids

    def _check_new_ids(self, executions: Sequence[NewExecution]) -> None:
        seen: set[str] = set()
        for new in executions:
            if new.execution_id in self.records or new.execution_id in seen:
                raise DuplicateExecutionError(f"Execution {new.execution_id} already exists")
            seen.add(new.execution_id)

    def _add(self, new: NewExecution, now_ms: int) -> None:
        self.records[new.execution_id] = new_record(new, now_ms)
        if new.idempotency_key is not None:
            self.keys[new.idempotency_key] = new.execution_id
        if new.parent_execution_id is not None and not new.is_completion:
            self.children.setdefault(new.parent_execution_id, []).append(new.execution_id)

    # -- claims and leases -----------------------------------------------------------------

    def claim(
        self,
        *,
        executor_id: str,
        lease_ms_by_task: Mapping[str, int],
        now_ms: int,
        limit: int,
        lease_ms: int | None,
        max_suspects: int | None,
    ) -> list[ExecutionRecord]:
        """Due ready executions of the tasks, highest priority, earliest start, then id; at
        most ``max_suspects`` suspects, the first ones, the others skipped as if absent."""
        due = sorted(
            (
                r
                for r in self.records.values()
                if r.status is S.READY and r.start_at_ms <= now_ms and r.task_id in lease_ms_by_task
            ),
            key=lambda r: (-r.priority, r.start_at_ms, r.execution_id),
        )
        claimed: list[ExecutionRecord] = []
        suspects_left = max_suspects
        for record in due:
            if len(claimed) >= limit:
                break
            if suspects_left is not None and is_suspect(record.lease_expiries):
                if suspects_left == 0:
                    continue
                suspects_left -= 1
            expires, timeout_at = claim_times(now_ms, lease_ms_by_task[record.task_id], lease_ms)
            record.status = S.RUNNING
            record.executor_id = executor_id
            record.lease_token += 1
            record.started_at_ms = now_ms
            record.expires_at_ms = expires
            record.timeout_at_ms = timeout_at
            record.updated_at_ms = now_ms
            claimed.append(record.copy())
        return claimed

    def renew(
        self, executor_id: str, leases: Sequence[tuple[str, int]], now_ms: int, lease_ms: int
    ) -> list[bool]:
        renewed: list[bool] = []
        for execution_id, token in leases:
            record = self.records.get(execution_id)
            ok = record is not None and renewal_applies(record, executor_id, token, now_ms)
            if ok and record is not None:
                record.expires_at_ms = renewed_expiry(
                    now_ms, lease_ms, record.timeout_at_ms, record.expires_at_ms
                )
            renewed.append(ok)
        return renewed

    def release(self, leases: Sequence[tuple[str, int]], now_ms: int) -> list[bool]:
        """Running executions given back as ready: no retry attempt, no lease expiry."""
        released: list[bool] = []
        for execution_id, token in leases:
            record = self.records.get(execution_id)
            ok = record is not None and record.status is S.RUNNING and record.lease_token == token
            if ok and record is not None:
                record.status = S.READY
                record.executor_id = None
                record.lease_token += 1
                record.expires_at_ms = None
                record.start_at_ms = now_ms
                record.updated_at_ms = now_ms
            released.append(ok)
        return released

    def expirable(self, now_ms: int) -> set[str]:
        """The running executions whose lease ended before ``now_ms``."""
        return {
            i
            for i, r in self.records.items()
            if r.status is S.RUNNING and r.expires_at_ms is not None and r.expires_at_ms < now_ms
        }

    def expire(self, execution_id: str, now_ms: int, max_lease_expiries: int | None) -> None:
        apply_expiry(self.records[execution_id], now_ms, max_lease_expiries)

    # -- outcomes --------------------------------------------------------------------------

    def record_outcomes(self, outcomes: Sequence[ExecutionOutcome], now_ms: int) -> list[bool]:
        """Each outcome on its own, in order, as if recorded one by one (a child whose parent
        has an outcome in the same call is not closed by its own: see closes_with_outcome)."""
        in_call = {outcome.execution_id for outcome in outcomes}
        return [self._record_outcome(outcome, now_ms, in_call) for outcome in outcomes]

    def _record_outcome(self, outcome: ExecutionOutcome, now_ms: int, in_call: set[str]) -> bool:
        record = self.records.get(outcome.execution_id)
        if record is None or not outcome_applies(record, outcome):
            return False
        apply_outcome(record, outcome, now_ms)
        parent_id = record.parent_execution_id
        if parent_id is not None:
            apply_outcome_close(
                record, self.records.get(parent_id), now_ms, parent_in_call=parent_id in in_call
            )
        for child in outcome.children:
            self._add(child, now_ms)
        if outcome.successor is not None:
            apply_successor(self.records[outcome.successor.parent_execution_id or ""], now_ms)
            self._add(outcome.successor, now_ms)
        return True

    # -- parents ---------------------------------------------------------------------------

    def claim_parents(
        self, task_ids: Collection[str], now_ms: int, lease_ms: int, limit: int
    ) -> list[ParentToAdvance]:
        """Advanceable parents of the tasks whose previous advance claim ended, by id."""
        ready = sorted(
            i
            for i, r in self.records.items()
            if is_advanceable(r.status, r.unfinished_children, r.failed_children)
            and r.task_id in task_ids
            and (r.expires_at_ms is None or r.expires_at_ms <= now_ms)
        )
        claimed: list[ParentToAdvance] = []
        for execution_id in ready[:limit]:
            record = self.records[execution_id]
            record.lease_token += 1
            record.expires_at_ms = now_ms + lease_ms
            record.updated_at_ms = now_ms
            claimed.append(ParentToAdvance(record.copy(), self.child_results(execution_id)))
        return claimed

    def child_results(self, execution_id: str) -> list[ChildResult]:
        return [
            ChildResult(c.execution_id, c.task_id, c.status, c.output, c.error)
            for c in (self.records[i] for i in self.children.get(execution_id, ()))
        ]

    # -- closure ---------------------------------------------------------------------------

    def closable(self) -> set[str]:
        """The finished executions waiting for their closure."""
        return {i for i, r in self.records.items() if r.close_state is CloseState.READY}

    def close(self, execution_id: str, now_ms: int) -> list[str]:
        """Close one execution; the ids of the executions that finished because of it."""
        record = self.records[execution_id]
        parent_id = record.parent_execution_id
        parent = None if parent_id is None else self.records.get(parent_id)
        to_cancel: list[ExecutionRecord] = []
        if record.status is not S.COMPLETED:
            child_ids = list(self.children.get(execution_id, ()))
            if record.completion_execution_id is not None:
                child_ids.append(record.completion_execution_id)
            to_cancel = [self.records[c] for c in child_ids if not self.records[c].is_finished]
        finished: list[str] = []
        if apply_close(record, parent, now_ms) and parent is not None:
            finished.append(parent.execution_id)
        error = cancelled_child_error(record)
        for child in to_cancel:
            cancel_record(child, now_ms, error)
            finished.append(child.execution_id)
        return finished

    def close_in_order(self, order: Sequence[str], now_ms: int) -> tuple[list[str], int]:
        """Close the ids of ``order``, each as soon as it waits for its closure (one may wait
        only once another's closure cancelled it): the ids finished because of the closures,
        and how many were closed."""
        pending = list(order)
        finished: list[str] = []
        count = 0
        while True:
            ready = [i for i in pending if self.records[i].close_state is CloseState.READY]
            if not ready:
                return finished, count
            pending.remove(ready[0])
            finished.extend(self.close(ready[0], now_ms))
            count += 1

    # -- cancellation ----------------------------------------------------------------------

    def cancel(
        self, execution_id: str, now_ms: int, error: DurableExecutionErrorInfo
    ) -> ExecutionRecord | None:
        record = self.records.get(execution_id)
        if record is None:
            return None
        if not record.is_finished:
            cancel_record(record, now_ms, error)
        return self.view(execution_id)

    def flagged(self, executor_id: str) -> set[str]:
        """Executions of ``executor_id`` cancelled since it last asked."""
        return {
            i for i, r in self.records.items() if r.stop_requested and r.executor_id == executor_id
        }

    def clear_flag(self, execution_id: str) -> None:
        self.records[execution_id].stop_requested = False
