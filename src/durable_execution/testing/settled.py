"""Conformance of the ``all_settled`` children policy: a child that does not complete is not
counted against its parent, which moves past its children only once none is unfinished."""

from __future__ import annotations

from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.records import ChildResult, CloseState
from durable_execution.testing.base import ConformanceBase
from durable_execution.testing.harness import (
    CHILD_TASK,
    ERROR_1,
    ERROR_2,
    T0,
    Harness,
    assert_fields,
    child_of,
    outcome_for,
)

__all__ = ["SettledChildrenConformance"]

_SETTLED = "all_settled"


class SettledChildrenConformance(ConformanceBase):
    """Parents under the ``all_settled`` children policy."""

    __test__ = False

    def test_parent_keeps_the_policy_of_its_waiting_outcome(self) -> None:
        """The outcome that makes a parent wait for its children stores its policy; a parent
        whose outcome names none is ``fail_fast``."""

        async def body(h: Harness) -> None:
            await h.start_parent("sp-s", ["sp-s-c"], children_policy=_SETTLED)
            await h.start_parent("sp-f", ["sp-f-c"])
            assert_fields(h["sp-s"], status=S.WAITING_FOR_CHILDREN, children_policy=_SETTLED)
            assert_fields(h["sp-f"], status=S.WAITING_FOR_CHILDREN, children_policy="fail_fast")
            reread = await h.connect()
            (record,) = await reread.get_executions(["sp-s"])
            assert record.children_policy == _SETTLED

        self.run_scenario(body)

    def test_failed_child_closed_by_its_outcome_does_not_make_the_parent_advance(self) -> None:
        """A child that fails, times out or is cancelled by its outcome is closed, counted as
        finished but not as failed: the parent advances once its last child finished, and
        sees every child's result."""

        async def body(h: Harness) -> None:
            ids = ["ss-c0", "ss-c1", "ss-c2", "ss-c3"]
            await h.start_parent("ss", ids, children_policy=_SETTLED)
            c0, c1, c2, c3 = await h.claim_ids(*ids, now_ms=T0 + 1)
            await h.finish(c1, S.FAILED, error=ERROR_1, now_ms=T0 + 2)
            assert_fields(h["ss-c1"], close_state=CloseState.CLOSED)
            assert_fields(h["ss"], unfinished_children=3, failed_children=0)
            await h.finish(c2, S.TIMED_OUT, error=ERROR_2, now_ms=T0 + 3)
            await h.finish(c3, S.CANCELLED, error=ERROR_2, now_ms=T0 + 3)
            assert_fields(h["ss"], unfinished_children=1, failed_children=0)
            assert (await h.close(now_ms=T0 + 4)).closed == 0
            assert await h.claim_parents(now_ms=T0 + 4) == []
            await h.finish(c0, S.COMPLETED, output="o0", now_ms=T0 + 5)
            assert_fields(h["ss"], status=S.WAITING_FOR_CHILDREN, unfinished_children=0)
            (claimed,) = await h.claim_parents(now_ms=T0 + 6)
            assert_fields(claimed.record, execution_id="ss", failed_children=0)
            assert claimed.children == [
                ChildResult("ss-c0", CHILD_TASK, S.COMPLETED, "o0", None),
                ChildResult("ss-c1", CHILD_TASK, S.FAILED, None, ERROR_1),
                ChildResult("ss-c2", CHILD_TASK, S.TIMED_OUT, None, ERROR_2),
                ChildResult("ss-c3", CHILD_TASK, S.CANCELLED, None, ERROR_2),
            ], claimed.children

        self.run_scenario(body)

    def test_failures_in_one_batch_of_outcomes_are_not_counted(self) -> None:
        """Many children failing in one call (the storages' batched paths) are closed without
        counting against their ``all_settled`` parent, while those of a ``fail_fast``
        parent in the same call are."""

        async def body(h: Harness) -> None:
            settled = [f"sb-s{i}" for i in range(6)]
            fast = [f"sb-f{i}" for i in range(3)]
            await h.start_parent("sb-s", settled, children_policy=_SETTLED)
            await h.start_parent("sb-f", fast)
            claimed = await h.claim_ids(*settled, *fast, now_ms=T0 + 1)
            outcomes = [outcome_for(c, S.FAILED, error=ERROR_1) for c in claimed[1:]]
            assert await h.record(*outcomes, now_ms=T0 + 2) == [True] * len(outcomes)
            assert_fields(h["sb-s"], unfinished_children=1, failed_children=0)
            assert_fields(h["sb-f"], unfinished_children=0, failed_children=3)
            assert [p.record.execution_id for p in await h.claim_parents(now_ms=T0 + 3)] == ["sb-f"]
            await h.finish(claimed[0], S.FAILED, error=ERROR_1, now_ms=T0 + 4)
            (parent,) = await h.claim_parents(now_ms=T0 + 5)
            assert parent.record.execution_id == "sb-s"
            assert [c.status for c in parent.children] == [S.FAILED] * 6

        self.run_scenario(body)

    def test_failure_beside_an_outcome_with_children_is_not_counted(self) -> None:
        """A child's failure recorded in the same call as another execution's children (the
        storages' general outcome path) is not counted against an ``all_settled`` parent."""

        async def body(h: Harness) -> None:
            await h.start_parent("sg", ["sg-c0", "sg-c1"], children_policy=_SETTLED)
            c0, c1 = await h.claim_ids("sg-c0", "sg-c1", now_ms=T0 + 1)
            failed = outcome_for(c0, S.FAILED, error=ERROR_1)
            spawning = outcome_for(
                c1, S.WAITING_FOR_CHILDREN, run_output="r", children=[child_of(c1, "sg-g", 0)]
            )
            assert await h.record(failed, spawning, now_ms=T0 + 2) == [True, True]
            assert_fields(h["sg-c0"], close_state=CloseState.CLOSED)
            assert_fields(h["sg"], unfinished_children=1, failed_children=0)
            assert await h.claim_parents(now_ms=T0 + 3) == []

        self.run_scenario(body)

    def test_closure_of_a_failed_child_with_children_does_not_count(self) -> None:
        """A failed child with unfinished children of its own is closed by the close pass
        (which cancels its children); its ``all_settled`` parent is not failed by it and
        still waits for its other child."""

        async def body(h: Harness) -> None:
            await h.start_parent("sc", ["sc-c0", "sc-c1"], children_policy=_SETTLED)
            c0, _ = await h.claim_ids("sc-c0", "sc-c1", now_ms=T0 + 1)
            await h.spawn(c0, ["sc-g"], now_ms=T0 + 2)
            assert await h.claim_parents((CHILD_TASK,), now_ms=T0 + 3) == []
            await h.cancel("sc-c0", now_ms=T0 + 4)
            total, _ = await h.close_all(now_ms=T0 + 5)
            assert total >= 2
            assert_fields(h["sc-g"], status=S.CANCELLED)
            assert_fields(h["sc"], unfinished_children=1, failed_children=0)
            assert await h.claim_parents(now_ms=T0 + 6) == []
            await h.cancel("sc-c1", now_ms=T0 + 7)
            await h.close_all(now_ms=T0 + 8)
            assert_fields(h["sc"], unfinished_children=0, failed_children=0)
            (parent,) = await h.claim_parents(now_ms=T0 + 9)
            assert [c.status for c in parent.children] == [S.CANCELLED, S.CANCELLED]

        self.run_scenario(body)

    def test_cancelling_a_settled_parent_cancels_its_children(self) -> None:
        """Cancellation does not depend on the policy: the parent's unfinished children are
        cancelled when it is closed."""

        async def body(h: Harness) -> None:
            await h.start_parent("sx", ["sx-c0", "sx-c1"], children_policy=_SETTLED)
            await h.cancel("sx", now_ms=T0 + 1)
            _, finished = await h.close_all(now_ms=T0 + 2)
            assert sorted(finished) == ["sx-c0", "sx-c1"]
            for child in ("sx-c0", "sx-c1"):
                assert_fields(h[child], status=S.CANCELLED)

        self.run_scenario(body)
