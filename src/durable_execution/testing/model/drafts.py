"""What the simulated executors write: new executions and outcomes, drawn by Hypothesis.

The executors behave as the real one may (``executor/outcomes.py``): a run completes, fails,
times out, is cancelled, retries, or (a parent) returns children or hands over to its
completion task; a child completing may hand over to a successor (a sequence's next step);
a parent moving past its children fails when one of them did not complete, else completes,
adds a child (a sequence's next step) or hands over to its completion task. What they write
may be stale: they keep claims they lost, and write with them later.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st

from durable_execution.errors import DurableExecutionErrorInfo, DurableExecutionErrorType
from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.records import (
    ChildResult,
    ExecutionOutcome,
    ExecutionRecord,
    NewExecution,
)
from durable_execution.testing.harness import outcome_for

__all__ = [
    "BACKSTOPS",
    "CANCEL_ERRORS",
    "CHILD",
    "COMPLETION",
    "Claim",
    "Drafts",
    "EXECUTORS",
    "LEAF_A",
    "LEAF_B",
    "PARENT",
    "TASKS",
]

LEAF_A = "leaf-a"
LEAF_B = "leaf-b"
PARENT = "parent"
CHILD = "child"
COMPLETION = "completion"
TASKS = (LEAF_A, LEAF_B, PARENT, CHILD, COMPLETION)
BACKSTOPS = {LEAF_A: 3_000, LEAF_B: 6_000, PARENT: 2_000, CHILD: 4_000, COMPLETION: 5_000}
"""Each task's timeout plus leeway (a claim's backstop), in ms."""
EXECUTORS = ("executor-1", "executor-2", "executor-3")
_MAX_DEPTH = 2

_ERRORS = (
    DurableExecutionErrorInfo(
        message="boom ✓",
        error_type=DurableExecutionErrorType.GENERIC,
        is_retryable=True,
        exception_type="builtins.ValueError",
        traceback="Traceback (most recent call last):\nValueError: boom",
    ),
    DurableExecutionErrorInfo(
        message="too slow", error_type=DurableExecutionErrorType.TIMED_OUT, is_retryable=False
    ),
)
CANCEL_ERRORS = (
    DurableExecutionErrorInfo(
        message="cancelled by the test", error_type=DurableExecutionErrorType.CANCELLED
    ),
    DurableExecutionErrorInfo(message="stopped", error_type=DurableExecutionErrorType.GENERIC),
)
_FINISH_WITH_ERROR = {"failed": S.FAILED, "timed_out": S.TIMED_OUT, "cancelled": S.CANCELLED}


@dataclass(slots=True)
class Claim:
    """A claim an executor holds: the execution as claimed, and for a parent claimed to move
    past its children, the children it saw then."""

    record: ExecutionRecord
    children: list[ChildResult] | None = None

    @property
    def lease(self) -> tuple[str, int]:
        return self.record.execution_id, self.record.lease_token


@dataclass
class Drafts:
    """Fresh ids, children's indexes and tree depths, shared by the executors of one run."""

    count: int = 0
    next_index: dict[str, int] = field(default_factory=dict)
    depth: dict[str, int] = field(default_factory=dict)

    def fresh_id(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def _index(self, parent_id: str) -> int:
        """Indexes only grow, even past children that were never inserted: the children's
        order is their indexes' order."""
        index = self.next_index.get(parent_id, 0)
        self.next_index[parent_id] = index + 1
        return index

    # -- new executions --------------------------------------------------------------------

    def root(self, data: st.DataObject, now_ms: int, known: list[str]) -> NewExecution:
        """A root to insert: sometimes with an id already used, an idempotency key from a
        small set, delayed, prioritized, or inserted claimed (direct dispatch)."""
        reuse = known and data.draw(st.integers(0, 9)) == 0
        execution_id = data.draw(st.sampled_from(known)) if reuse else self.fresh_id("r")
        task_id = data.draw(st.sampled_from((PARENT, LEAF_A, PARENT, LEAF_B)))
        self.depth.setdefault(execution_id, 0)
        new = NewExecution(
            execution_id=execution_id,
            task_id=task_id,
            input=f"in-{execution_id}",
            start_at_ms=now_ms + data.draw(st.sampled_from((0, 0, 40, 1_500, -20))),
            priority=data.draw(st.sampled_from((0, 0, 1, -1))),
            idempotency_key=data.draw(st.none() | st.sampled_from(("k0", "k1", "k2"))),
            attributes=data.draw(st.sampled_from((None, '{"team": "a"}'))),
        )
        return self._claimed(data, new)

    def burst(self, count: int, now_ms: int) -> list[NewExecution]:
        """``count`` plain leaves, due now: enough runs for one executor to claim and finish
        in one batch (the backends' batched statements)."""
        burst = [
            NewExecution(self.fresh_id("r"), LEAF_A, "in-burst", start_at_ms=now_ms)
            for _ in range(count)
        ]
        for new in burst:
            self.depth[new.execution_id] = 0
        return burst

    @staticmethod
    def _claimed(data: st.DataObject, new: NewExecution) -> NewExecution:
        """``new``, or (sometimes) ``new`` inserted claimed by one of the executors."""
        owner = data.draw(st.none() | st.sampled_from(EXECUTORS))
        if owner is not None:
            new.claimed_by = owner
            new.claim_lease_ms = data.draw(st.sampled_from((300, 2_000)))
            new.claim_timeout_ms = data.draw(st.sampled_from((None, BACKSTOPS[new.task_id])))
        return new

    def child(
        self,
        data: st.DataObject,
        parent: ExecutionRecord,
        now_ms: int,
        *,
        is_completion: bool = False,
    ) -> NewExecution:
        """A child of ``parent`` (a parent itself sometimes, not too deep), or its completion
        task; sometimes inserted claimed by one of the executors."""
        execution_id = self.fresh_id("c")
        depth = self.depth.get(parent.execution_id, 0) + 1
        self.depth[execution_id] = depth
        if is_completion:
            task_id, index = COMPLETION, 0
        else:
            nested = depth < _MAX_DEPTH and data.draw(st.integers(0, 3)) == 0
            task_id, index = (PARENT if nested else CHILD), self._index(parent.execution_id)
        new = NewExecution(
            execution_id=execution_id,
            task_id=task_id,
            input=f"in-{execution_id}",
            start_at_ms=now_ms + data.draw(st.sampled_from((0, 0, 30))),
            root_execution_id=parent.root_execution_id or parent.execution_id,
            parent_execution_id=parent.execution_id,
            index_in_parent=index,
            is_completion=is_completion,
            priority=parent.priority,
            attributes=parent.attributes,
        )
        return self._claimed(data, new)

    def successor(self, data: st.DataObject, step: ExecutionRecord, now_ms: int) -> NewExecution:
        """The next step after ``step``, a child that completed (a sequence moving on)."""
        parent_id = step.parent_execution_id or ""
        execution_id = self.fresh_id("s")
        self.depth[execution_id] = self.depth.get(step.execution_id, 1)
        new = NewExecution(
            execution_id=execution_id,
            task_id=CHILD,
            input=f"out-{step.execution_id}",
            start_at_ms=now_ms,
            root_execution_id=step.root_execution_id,
            parent_execution_id=parent_id,
            index_in_parent=self._index(parent_id),
            priority=step.priority,
            attributes=step.attributes,
        )
        return self._claimed(data, new)

    # -- outcomes --------------------------------------------------------------------------

    def outcome(self, data: st.DataObject, claim: Claim, now_ms: int) -> ExecutionOutcome:
        """What an executor writes for ``claim`` (a run, or a parent moving on)."""
        if claim.children is not None:
            return self._advance(data, claim.record, claim.children, now_ms)
        record = claim.record
        # Mostly successes, so that trees grow and finish; every other ending now and then.
        kinds = ["completed", "completed", "completed", "failed", "timed_out", "cancelled"]
        kinds += ["retry", "retry"]
        if record.task_id == PARENT:
            kinds = ["children"] * 4 + ["completion"] * 2 + kinds[2:]
        kind = data.draw(st.sampled_from(kinds))
        if kind == "completed":
            successor = None
            if record.parent_execution_id is not None and not record.is_completion:
                successor = (
                    self.successor(data, record, now_ms) if data.draw(st.booleans()) else None
                )
            return outcome_for(record, S.COMPLETED, output=f"out-{now_ms}", successor=successor)
        if kind == "retry":
            delay = data.draw(st.sampled_from((None, 0, 100)))
            return outcome_for(
                record,
                S.READY,
                error=data.draw(st.sampled_from(_ERRORS)),
                start_at_ms=None if delay is None else now_ms + delay,
            )
        if kind == "children":
            count = data.draw(st.sampled_from((1, 1, 2, 3, 0)))
            children = [self.child(data, record, now_ms) for _ in range(count)]
            return outcome_for(
                record, S.WAITING_FOR_CHILDREN, run_output=f"ran-{now_ms}", children=children
            )
        if kind == "completion":
            completion = self.child(data, record, now_ms, is_completion=True)
            run_output = data.draw(st.sampled_from((None, f"ran-{now_ms}")))
            return outcome_for(
                record,
                S.WAITING_FOR_ON_RUN_AND_CHILDREN_COMPLETE,
                run_output=run_output,
                children=[completion],
            )
        return outcome_for(
            record, _FINISH_WITH_ERROR[kind], error=data.draw(st.sampled_from(_ERRORS))
        )

    def _advance(
        self,
        data: st.DataObject,
        parent: ExecutionRecord,
        children: list[ChildResult],
        now_ms: int,
    ) -> ExecutionOutcome:
        error = data.draw(st.sampled_from(_ERRORS))
        if any(c.status.is_finished and c.status is not S.COMPLETED for c in children):
            status = data.draw(st.sampled_from((S.CHILDREN_FAILED, S.CHILDREN_FAILED, S.FAILED)))
            return outcome_for(parent, status, error=error)
        kind = data.draw(st.sampled_from(("completed", "next", "completion", "failed")))
        if kind == "completed":
            return outcome_for(parent, S.COMPLETED, output=f"all-{len(children)}")
        if kind == "next":
            step = self.child(data, parent, now_ms)
            return outcome_for(parent, S.WAITING_FOR_CHILDREN, children=[step])
        if kind == "completion":
            completion = self.child(data, parent, now_ms, is_completion=True)
            return outcome_for(
                parent, S.WAITING_FOR_ON_RUN_AND_CHILDREN_COMPLETE, children=[completion]
            )
        return outcome_for(parent, S.FAILED, error=error)

    def forged(self, data: st.DataObject, record: ExecutionRecord) -> ExecutionOutcome:
        """An outcome with a lease token ``record`` does not have (never issued, or past)."""
        token = record.lease_token + data.draw(st.sampled_from((-2, -1, 1, 7)))
        expected = data.draw(st.sampled_from((record.status, S.RUNNING, S.WAITING_FOR_CHILDREN)))
        status = data.draw(st.sampled_from((S.COMPLETED, S.FAILED, S.READY)))
        return outcome_for(
            record,
            status,
            lease_token=token,
            expected_status=expected,
            output="forged" if status is S.COMPLETED else None,
            error=None if status is S.COMPLETED else _ERRORS[0],
        )
