"""Conformance of ``claim_parents_to_advance`` and of the outcomes of advancing parents."""

from __future__ import annotations

from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.records import ChildResult, CloseState
from durable_execution.testing.base import ConformanceBase
from durable_execution.testing.harness import (
    CHILD_TASK,
    ERROR_1,
    PARENT_TASK,
    T0,
    TASK_B,
    Harness,
    assert_fields,
    child_of,
    new_execution,
    outcome_for,
)

__all__ = ["ParentConformance"]


class ParentConformance(ConformanceBase):
    """Claiming parents whose children are done, and moving them on."""

    __test__ = False

    def test_parent_advances_only_once_all_children_are_closed(self) -> None:
        """A parent can move on once all its children are closed (a child's outcome closes
        it, a leaf having nothing else to close), and is claimed with its children's results
        in order."""

        async def body(h: Harness) -> None:
            parent = await h.start_parent("pa", ["pa-c1", "pa-c0"])
            assert await h.claim_parents(now_ms=T0 + 1) == []
            c1, c0 = await h.claim_ids("pa-c1", "pa-c0", now_ms=T0 + 1)
            await h.finish(c0, S.COMPLETED, output="o0", now_ms=T0 + 2)
            assert await h.claim_parents(now_ms=T0 + 2) == []
            await h.finish(c1, S.COMPLETED, output="o1", now_ms=T0 + 3)
            result = await h.close(now_ms=T0 + 4)
            assert (result.closed, result.finished_execution_ids) == (0, [])
            assert_fields(h["pa"], status=S.WAITING_FOR_CHILDREN, unfinished_children=0)
            (claimed,) = await h.claim_parents(now_ms=T0 + 5, lease_ms=10_000)
            assert_fields(
                claimed.record,
                execution_id="pa",
                status=S.WAITING_FOR_CHILDREN,
                children_count=2,
                unfinished_children=0,
                failed_children=0,
                expires_at_ms=T0 + 10_005,
            )
            assert claimed.record.lease_token > parent.lease_token
            assert claimed.children == [
                ChildResult("pa-c1", CHILD_TASK, S.COMPLETED, "o1", None),
                ChildResult("pa-c0", CHILD_TASK, S.COMPLETED, "o0", None),
            ], claimed.children

        self.run_scenario(body)

    def test_parent_advances_once_a_failed_child_is_closed(self) -> None:
        """A child that finished without completing makes its parent advanceable, once closed
        (by its outcome, having no children of its own), even while its siblings are
        unfinished."""

        async def body(h: Harness) -> None:
            await h.start_parent("pf", ["pf-c0", "pf-c1", "pf-c2"])
            _, c1 = await h.claim_ids("pf-c0", "pf-c1", now_ms=T0 + 1)
            await h.finish(c1, S.FAILED, error=ERROR_1, now_ms=T0 + 2)
            assert_fields(h["pf-c1"], close_state=CloseState.CLOSED)
            assert_fields(h["pf"], unfinished_children=2, failed_children=1)
            assert (await h.close(now_ms=T0 + 3)).closed == 0
            (claimed,) = await h.claim_parents(now_ms=T0 + 4)
            assert_fields(claimed.record, execution_id="pf", failed_children=1)
            assert claimed.children == [
                ChildResult("pf-c0", CHILD_TASK, S.RUNNING, None, None),
                ChildResult("pf-c1", CHILD_TASK, S.FAILED, None, ERROR_1),
                ChildResult("pf-c2", CHILD_TASK, S.READY, None, None),
            ], claimed.children

        self.run_scenario(body)

    def test_claim_parents_only_of_given_tasks_and_up_to_limit(self) -> None:
        """Only parents of ``task_ids`` are claimed, at most ``limit`` per call."""

        async def body(h: Harness) -> None:
            await h.advanceable_parent("pl-1", ["pl-1-c"])
            await h.advanceable_parent("pl-2", ["pl-2-c"])
            await h.insert(new_execution("pl-b", TASK_B))
            (other,) = await h.claim_ids("pl-b")
            await h.spawn(other, ["pl-b-c"])
            (child,) = await h.claim_ids("pl-b-c")
            await h.finish(child, S.COMPLETED, output="x")
            await h.close_all()
            assert await h.claim_parents(()) == []
            assert await h.claim_parents(("no-such-task",)) == []
            assert await h.claim_parents(limit=0) == []
            first = await h.claim_parents(limit=1)
            second = await h.claim_parents(limit=1)
            assert await h.claim_parents(limit=1) == []
            claimed = sorted(p.record.execution_id for p in first + second)
            assert claimed == ["pl-1", "pl-2"], claimed
            (of_b,) = await h.claim_parents((TASK_B, PARENT_TASK))
            assert of_b.record.execution_id == "pl-b"

        self.run_scenario(body)

    def test_claimed_parent_is_not_claimed_again_until_its_lease_passed(self) -> None:
        """An advance claim leases the parent; a later claim fences the earlier one."""

        async def body(h: Harness) -> None:
            await h.advanceable_parent("pr", ["pr-c"])
            start = T0 + 10
            (first,) = await h.claim_parents(now_ms=start, lease_ms=10_000)
            assert first.record.expires_at_ms == start + 10_000
            assert await h.claim_parents(now_ms=start) == []
            assert await h.claim_parents(now_ms=start + 9_999) == []
            (second,) = await h.claim_parents(now_ms=start + 10_001, lease_ms=5_000)
            assert second.record.lease_token > first.record.lease_token
            assert second.record.expires_at_ms == start + 10_001 + 5_000
            assert second.children == first.children
            late = start + 10_002
            stale = outcome_for(first.record, S.COMPLETED, output="stale")
            wrong_status = outcome_for(
                second.record, S.COMPLETED, output="x", expected_status=S.RUNNING
            )
            assert await h.record(stale, wrong_status, now_ms=late) == [False, False]
            assert h["pr"].status is S.WAITING_FOR_CHILDREN
            advance = outcome_for(second.record, S.COMPLETED, output="adv")
            assert await h.record(advance, now_ms=late) == [True]
            assert_fields(
                h["pr"],
                status=S.COMPLETED,
                output="adv",
                error=None,
                finished_at_ms=late,
                close_state=CloseState.CLOSED,
                expires_at_ms=None,
                executor_id=None,
            )
            assert await h.claim_parents(now_ms=late + 100_000) == []

        self.run_scenario(body)

    def test_advancing_parent_to_its_completion_task(self) -> None:
        """A parent past its children may wait for its completion task, inserted with it."""

        async def body(h: Harness) -> None:
            await h.advanceable_parent("pz", ["pz-c0"])
            (claimed,) = await h.claim_parents()
            record = claimed.record
            final = child_of(record, "pz-fin", 1, task_id=PARENT_TASK, is_completion=True)
            status = S.WAITING_FOR_ON_RUN_AND_CHILDREN_COMPLETE
            assert await h.record(outcome_for(record, status, children=[final])) == [True]
            assert_fields(
                h["pz"],
                status=status,
                completion_execution_id="pz-fin",
                child_execution_ids=("pz-c0",),
                children_count=1,
                expires_at_ms=None,
                finished_at_ms=None,
            )
            assert_fields(h["pz-fin"], status=S.READY, is_completion=True, parent_execution_id="pz")
            assert await h.claim_parents(now_ms=T0 + 100_000) == []

        self.run_scenario(body)

    def test_cancelling_a_parent_fences_its_advance_claim(self) -> None:
        """Once a claimed parent is cancelled, its advance claim can no longer move it."""

        async def body(h: Harness) -> None:
            await h.advanceable_parent("px", ["px-c"])
            (claimed,) = await h.claim_parents()
            cancelled = await h.cancel("px", now_ms=T0 + 1)
            assert cancelled is not None
            assert cancelled.status is S.CANCELLED
            advance = outcome_for(claimed.record, S.COMPLETED, output="late")
            assert await h.record(advance, now_ms=T0 + 2) == [False]
            assert_fields(h["px"], status=S.CANCELLED, output=None)
            assert await h.claim_parents(now_ms=T0 + 100_000) == []

        self.run_scenario(body)
