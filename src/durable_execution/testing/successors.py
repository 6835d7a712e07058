"""Conformance of successors (a child completing hands over to the parent's next child) and of
parents that add children when they move on."""

from __future__ import annotations

import dataclasses

from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.records import ChildResult, CloseState
from durable_execution.testing.base import ConformanceBase
from durable_execution.testing.harness import (
    CHILD_TASK,
    ERROR_1,
    EXECUTOR_1,
    LEASES,
    T0,
    Harness,
    assert_fields,
    child_of,
    outcome_for,
)

__all__ = ["SuccessorConformance"]


class SuccessorConformance(ConformanceBase):
    """``ExecutionOutcome.successor`` and ``waiting_for_children`` → ``waiting_for_children``."""

    __test__ = False

    def test_a_successor_takes_the_completed_childs_place(self) -> None:
        """The child completes and is closed at once; the parent counts one more child, as
        many unfinished as before, and cannot advance until the successor is done."""

        async def body(h: Harness) -> None:
            parent = await h.start_parent("sq", ["sq-0"])
            (step,) = await h.claim_ids("sq-0", now_ms=T0 + 1)
            nxt = child_of(parent, "sq-1", 1)
            done = outcome_for(step, S.COMPLETED, output="o0", successor=nxt)
            assert await h.record(done, now_ms=T0 + 2) == [True]
            assert_fields(
                h["sq-0"],
                status=S.COMPLETED,
                output="o0",
                close_state=CloseState.CLOSED,
                finished_at_ms=T0 + 2,
                executor_id=None,
                expires_at_ms=None,
            )
            assert_fields(
                h["sq"],
                status=S.WAITING_FOR_CHILDREN,
                children_count=2,
                unfinished_children=1,
                failed_children=0,
                child_execution_ids=("sq-0", "sq-1"),
                updated_at_ms=T0 + 2,
            )
            assert_fields(
                h["sq-1"],
                status=S.READY,
                parent_execution_id="sq",
                root_execution_id="sq",
                index_in_parent=1,
                created_at_ms=T0 + 2,
            )
            assert (await h.close(now_ms=T0 + 3)).closed == 0
            assert await h.claim_parents(now_ms=T0 + 3) == []
            (last,) = await h.claim_ids("sq-1", now_ms=T0 + 4)
            await h.finish(last, S.COMPLETED, output="o1", now_ms=T0 + 5)  # closed by it
            assert (await h.close(now_ms=T0 + 6)).closed == 0
            (claimed,) = await h.claim_parents(now_ms=T0 + 7)
            assert claimed.children == [
                ChildResult("sq-0", CHILD_TASK, S.COMPLETED, "o0", None),
                ChildResult("sq-1", CHILD_TASK, S.COMPLETED, "o1", None),
            ], claimed.children

        self.run_scenario(body)

    def test_a_step_that_retried_hands_over_without_its_old_error(self) -> None:
        """A step whose first attempt failed (its error kept while it waits to retry) and
        which then completes with a successor has no error left, as any completed
        execution."""

        async def body(h: Harness) -> None:
            parent = await h.start_parent("sr", ["sr-0"])
            (step,) = await h.claim_ids("sr-0", now_ms=T0 + 1)
            retry = outcome_for(step, S.READY, error=ERROR_1, start_at_ms=T0 + 2)
            assert await h.record(retry, now_ms=T0 + 1) == [True]
            assert h["sr-0"].error == ERROR_1
            (step,) = await h.claim_ids("sr-0", now_ms=T0 + 2)
            nxt = child_of(parent, "sr-1", 1)
            done = outcome_for(step, S.COMPLETED, output="o0", successor=nxt)
            assert await h.record(done, now_ms=T0 + 3) == [True]
            assert_fields(h["sr-0"], status=S.COMPLETED, output="o0", error=None, retry_attempts=1)

        self.run_scenario(body)

    def test_a_successor_inserted_claimed_runs_for_its_creator(self) -> None:
        """With ``claimed_by``, the successor is running at once, as any direct dispatch."""

        async def body(h: Harness) -> None:
            parent = await h.start_parent("sc", ["sc-0"])
            (step,) = await h.claim_ids("sc-0")
            nxt = dataclasses.replace(
                child_of(parent, "sc-1", 1),
                claimed_by=EXECUTOR_1,
                claim_lease_ms=LEASES[CHILD_TASK],
            )
            done = outcome_for(step, S.COMPLETED, output="o0", successor=nxt)
            assert await h.record(done, now_ms=T0 + 3) == [True]
            assert_fields(
                h["sc-1"],
                status=S.RUNNING,
                executor_id=EXECUTOR_1,
                lease_token=1,
                expires_at_ms=T0 + 3 + LEASES[CHILD_TASK],
            )
            assert await h.claim((CHILD_TASK,), now_ms=T0 + 4) == []

        self.run_scenario(body)

    def test_a_fenced_outcome_inserts_no_successor(self) -> None:
        """A lost lease, or a successor that is not the child's sibling: nothing changes."""

        async def body(h: Harness) -> None:
            parent = await h.start_parent("sf", ["sf-0"])
            other = await h.start_parent("sf-other", ["sf-o0"])
            (step,) = await h.claim_ids("sf-0")
            stale = outcome_for(
                step,
                S.COMPLETED,
                output="x",
                lease_token=step.lease_token + 1,
                successor=child_of(parent, "sf-1", 1),
            )
            foreign = outcome_for(
                step, S.COMPLETED, output="x", successor=child_of(other, "sf-2", 1)
            )
            assert await h.record(stale, foreign) == [False, False]
            assert await h.storage.get_executions(["sf-1", "sf-2"]) == []
            assert_fields(h["sf-0"], status=S.RUNNING, close_state=CloseState.OPEN)
            assert_fields(h["sf"], children_count=1, unfinished_children=1)
            assert_fields(h["sf-other"], children_count=1, unfinished_children=1)

        self.run_scenario(body)

    def test_successor_of_a_cancelled_parent_is_cancelled_at_its_closure(self) -> None:
        """A parent cancelled while its child runs: the child may still hand over (its lease
        is intact until the parent's closure), and the closure then cancels the successor."""

        async def body(h: Harness) -> None:
            parent = await h.start_parent("sx", ["sx-0"])
            (step,) = await h.claim_ids("sx-0")
            assert await h.cancel("sx", now_ms=T0 + 1) is not None
            done = outcome_for(step, S.COMPLETED, output="o", successor=child_of(parent, "sx-1", 1))
            assert await h.record(done, now_ms=T0 + 2) == [True]
            assert h["sx-1"].status is S.READY
            _, finished = await h.close_all(now_ms=T0 + 3)
            assert finished == ["sx-1"]
            assert_fields(h["sx-1"], status=S.CANCELLED, close_state=CloseState.CLOSED)
            assert_fields(h["sx-0"], status=S.COMPLETED, close_state=CloseState.CLOSED)

        self.run_scenario(body)

    def test_a_child_cancelled_by_its_parents_closure_cannot_hand_over(self) -> None:
        """Once the parent's closure cancelled the child, its outcome and successor are
        refused."""

        async def body(h: Harness) -> None:
            parent = await h.start_parent("sy", ["sy-0"])
            (step,) = await h.claim_ids("sy-0")
            assert await h.cancel("sy", now_ms=T0 + 1) is not None
            await h.close_all(now_ms=T0 + 2)
            assert h["sy-0"].status is S.CANCELLED
            done = outcome_for(step, S.COMPLETED, output="o", successor=child_of(parent, "sy-1", 1))
            assert await h.record(done, now_ms=T0 + 3) == [False]
            assert await h.storage.get_executions(["sy-1"]) == []

        self.run_scenario(body)

    def test_successors_and_other_outcomes_in_one_batch(self) -> None:
        """Several parents' children hand over in one call, next to ordinary outcomes; each
        applies on its own."""

        async def body(h: Harness) -> None:
            pa = await h.start_parent("sb-a", ["sb-a0"])
            pb = await h.start_parent("sb-b", ["sb-b0", "sb-b1"])
            a0, b0, b1 = await h.claim_ids("sb-a0", "sb-b0", "sb-b1")
            outcomes = [
                outcome_for(a0, S.COMPLETED, output="a", successor=child_of(pa, "sb-a1", 1)),
                outcome_for(b0, S.FAILED, error=ERROR_1),
                outcome_for(b1, S.COMPLETED, output="b", successor=child_of(pb, "sb-b2", 2)),
                outcome_for(a0, S.COMPLETED, output="again", successor=child_of(pa, "sb-a9", 9)),
            ]
            assert await h.record(*outcomes, now_ms=T0 + 1) == [True, True, True, False]
            assert await h.storage.get_executions(["sb-a9"]) == []
            assert_fields(h["sb-a"], children_count=2, unfinished_children=1)
            assert_fields(
                h["sb-b"],
                children_count=3,
                unfinished_children=1,  # sb-b0 closed by its outcome, sb-b2 replaces sb-b1
                failed_children=1,
                child_execution_ids=("sb-b0", "sb-b1", "sb-b2"),
            )
            assert_fields(h["sb-a0"], output="a", close_state=CloseState.CLOSED)
            assert_fields(h["sb-b0"], status=S.FAILED, close_state=CloseState.CLOSED)
            assert await h.close_all(now_ms=T0 + 2) == (0, [])

        self.run_scenario(body)

    def test_an_advancing_parent_adds_children(self) -> None:
        """``waiting_for_children`` again, with more children: they come after the first
        ones, the counts grow, and the advance lease is given up."""

        async def body(h: Harness) -> None:
            await h.advanceable_parent("sm", ["sm-0"])
            (claimed,) = await h.claim_parents(now_ms=T0 + 1, lease_ms=10_000)
            record = claimed.record
            more = [child_of(record, "sm-1", 1), child_of(record, "sm-2", 2)]
            grow = outcome_for(record, S.WAITING_FOR_CHILDREN, children=more)
            assert await h.record(grow, now_ms=T0 + 2) == [True]
            assert_fields(
                h["sm"],
                status=S.WAITING_FOR_CHILDREN,
                children_count=3,
                unfinished_children=2,
                child_execution_ids=("sm-0", "sm-1", "sm-2"),
                expires_at_ms=None,
                run_output="ran",
            )
            assert await h.claim_parents(now_ms=T0 + 3) == []
            for child in await h.claim_ids("sm-1", "sm-2", now_ms=T0 + 3):
                await h.finish(child, S.COMPLETED, output=child.execution_id, now_ms=T0 + 4)
            await h.close_all(now_ms=T0 + 5)
            (again,) = await h.claim_parents(now_ms=T0 + 6)
            assert [c.execution_id for c in again.children] == ["sm-0", "sm-1", "sm-2"]

        self.run_scenario(body)
