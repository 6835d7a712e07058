"""Conformance of ``close_finished_executions``: parents' counters, completion tasks, and the
cancellation of the unfinished children of executions that did not complete."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.records import CloseState
from durable_execution.storage.transitions import cancelled_child_error, completion_failed_error
from durable_execution.testing.base import ConformanceBase
from durable_execution.testing.harness import (
    COMPLETION_TASK,
    ERROR_1,
    ERROR_2,
    EXECUTOR_1,
    EXECUTOR_2,
    PARENT_TASK,
    T0,
    TASK_A,
    Harness,
    assert_fields,
    child_of,
    new_execution,
    outcome_for,
)

__all__ = ["ClosureConformance"]

_WAITING_FOR_COMPLETION = S.WAITING_FOR_ON_RUN_AND_CHILDREN_COMPLETE


async def _parent_waiting_for_completion(h: Harness, parent_id: str, completion_id: str) -> None:
    """A root that ran and now waits for its completion task (no children)."""
    await h.insert(new_execution(parent_id, PARENT_TASK))
    (parent,) = await h.claim_ids(parent_id)
    final = child_of(parent, completion_id, 0, task_id=COMPLETION_TASK, is_completion=True)
    outcome = outcome_for(parent, _WAITING_FOR_COMPLETION, run_output="ro", children=[final])
    assert await h.record(outcome) == [True]


class ClosureConformance(ConformanceBase):
    """Closing finished executions."""

    __test__ = False

    def test_each_finished_execution_is_closed_exactly_once(self) -> None:
        """Closure takes at most ``limit`` per call, and never closes anything twice."""

        async def body(h: Harness) -> None:
            await h.start_parent("co", ["co-0", "co-1", "co-2"])
            for execution_id in ("co-0", "co-1", "co-2"):  # cancelled children wait for closure
                await h.cancel(execution_id)
            first = await h.close(now_ms=T0 + 1, limit=2)
            assert (first.closed, first.finished_execution_ids) == (2, [])
            assert sum(h[c].is_closed for c in ("co-0", "co-1", "co-2")) == 2
            second = await h.close(now_ms=T0 + 2, limit=2)
            assert (second.closed, second.finished_execution_ids) == (1, [])
            assert (await h.close(now_ms=T0 + 3)).closed == 0
            for execution_id in ("co-0", "co-1", "co-2"):
                assert h[execution_id].close_state is CloseState.CLOSED
            assert_fields(
                h["co"],
                status=S.WAITING_FOR_CHILDREN,
                unfinished_children=0,
                failed_children=3,
                close_state=CloseState.OPEN,
            )

        self.run_scenario(body)

    def test_child_closure_updates_the_parent_counters(self) -> None:
        """Closing a child decrements its parent's unfinished children, and counts it as
        failed unless it completed: in the outcome that finished it (a child with nothing
        else to close), or by the closure (a child cancelled)."""

        async def body(h: Harness) -> None:
            await h.start_parent("cu", ["cu-0", "cu-1", "cu-2", "cu-3"])
            c0, c1 = await h.claim_ids("cu-0", "cu-1")
            steps: list[tuple[Callable[[], Awaitable[object]], int, int, int]] = [
                (lambda: h.finish(c0, S.COMPLETED, output="x", now_ms=T0 + 1), 3, 0, 0),
                (lambda: h.finish(c1, S.FAILED, error=ERROR_1, now_ms=T0 + 1), 2, 1, 0),
                (lambda: h.cancel("cu-2", now_ms=T0 + 1), 1, 2, 1),
            ]
            for finish, unfinished, failed, by_closure in steps:
                await finish()
                assert_fields(h["cu"], unfinished_children=unfinished + by_closure)
                assert (await h.close(now_ms=T0 + 2)).closed == by_closure
                assert_fields(h["cu"], unfinished_children=unfinished, failed_children=failed)
            (c3,) = await h.claim_ids("cu-3")
            await h.finish(c3, S.TIMED_OUT, error=ERROR_2, now_ms=T0 + 3)
            assert_fields(h["cu-3"], close_state=CloseState.CLOSED)
            assert (await h.close()).closed == 0
            assert_fields(
                h["cu"],
                status=S.WAITING_FOR_CHILDREN,
                unfinished_children=0,
                failed_children=3,
                children_count=4,
                updated_at_ms=T0 + 3,
            )

        self.run_scenario(body)

    def test_completion_task_completes_its_parent(self) -> None:
        """Closing a completed completion task completes its parent with its output."""

        async def body(h: Harness) -> None:
            await h.advanceable_parent("fz", ["fz-c0"])
            (claimed,) = await h.claim_parents()
            final = child_of(
                claimed.record, "fz-fin", 1, task_id=COMPLETION_TASK, is_completion=True
            )
            advance = outcome_for(claimed.record, _WAITING_FOR_COMPLETION, children=[final])
            assert await h.record(advance) == [True]
            (fin,) = await h.claim_ids("fz-fin", now_ms=T0 + 9)
            await h.finish(fin, S.COMPLETED, output="final-out", now_ms=T0 + 10)
            assert_fields(h["fz-fin"], close_state=CloseState.READY)
            assert_fields(h["fz"], status=_WAITING_FOR_COMPLETION, output=None)
            result = await h.close(now_ms=T0 + 11)
            assert (result.closed, result.finished_execution_ids) == (1, ["fz"])
            assert_fields(
                h["fz"],
                status=S.COMPLETED,
                output="final-out",
                error=None,
                finished_at_ms=T0 + 11,
                close_state=CloseState.CLOSED,
                child_execution_ids=("fz-c0",),
            )
            assert h["fz-fin"].is_closed
            assert (await h.close(now_ms=T0 + 12)).closed == 0

        self.run_scenario(body)

    def test_failed_completion_task_fails_its_parent(self) -> None:
        """Closing a completion task that did not complete fails its parent with an error."""

        async def body(h: Harness) -> None:
            await _parent_waiting_for_completion(h, "fy", "fy-fin")
            (fin,) = await h.claim_ids("fy-fin", now_ms=T0 + 4)
            await h.finish(fin, S.FAILED, error=ERROR_1, now_ms=T0 + 5)
            assert h["fy"].status is _WAITING_FOR_COMPLETION
            result = await h.close(now_ms=T0 + 6)
            assert (result.closed, result.finished_execution_ids) == (1, ["fy"])
            assert_fields(
                h["fy"],
                status=S.ON_RUN_AND_CHILDREN_COMPLETE_FAILED,
                output=None,
                run_output="ro",
                finished_at_ms=T0 + 6,
                close_state=CloseState.CLOSED,
            )
            # The error names the completion task and how it ended (the reference text is
            # transitions.completion_failed_error, which the SQL backends must write too).
            assert_fields(h["fy"], error=completion_failed_error(h["fy-fin"]))
            error = h["fy"].error
            assert error is not None
            assert error.message == (
                "on_run_and_children_complete task completion-task (fy-fin) ended failed: "
                f"{ERROR_1.message}"
            )
            assert (await h.close(now_ms=T0 + 7)).closed == 0

        self.run_scenario(body)

    def test_parent_that_did_not_complete_cancels_its_unfinished_children(self) -> None:
        """Closing a parent that failed cancels its unfinished children: ready ones plainly,
        running ones flagged for their owner, who keeps them; then they close too."""

        async def body(h: Harness) -> None:
            await h.start_parent("cf", ["cf-0", "cf-1", "cf-2"])
            c0, c1 = await h.claim_ids("cf-0", "cf-1", now_ms=T0 + 1, executor_id=EXECUTOR_2)
            await h.finish(c1, S.FAILED, error=ERROR_1, now_ms=T0 + 2)
            assert (await h.close(now_ms=T0 + 3)).closed == 0  # closed by its outcome
            (claimed,) = await h.claim_parents(now_ms=T0 + 4)
            failing = outcome_for(claimed.record, S.CHILDREN_FAILED, error=ERROR_1)
            assert await h.record(failing, now_ms=T0 + 5) == [True]
            assert_fields(
                h["cf"],
                status=S.CHILDREN_FAILED,
                error=ERROR_1,
                finished_at_ms=T0 + 5,
                close_state=CloseState.READY,
            )
            total, finished = await h.close_all(now_ms=T0 + 6)
            assert total == 3, total  # the parent, then the two children it cancelled
            assert sorted(finished) == ["cf-0", "cf-2"], finished
            common = {"status": S.CANCELLED, "finished_at_ms": T0 + 6}
            assert_fields(h["cf-0"], stop_requested=True, executor_id=EXECUTOR_2)
            assert_fields(h["cf-2"], stop_requested=False, executor_id=None)
            for execution_id in ("cf", "cf-0", "cf-2"):
                assert h[execution_id].is_closed
            for execution_id in ("cf-0", "cf-2"):
                assert_fields(h[execution_id], **common, error=cancelled_child_error(h["cf"]))
            error = h["cf-0"].error
            assert error is not None
            assert error.message == (
                "Parent task parent-task (cf) ended children_failed; its unfinished children "
                "were cancelled"
            )
            assert_fields(h["cf"], status=S.CHILDREN_FAILED, unfinished_children=2)
            claims = await h.storage.claim_cancellations(executor_id=EXECUTOR_2, limit=10)
            assert claims == ["cf-0"], claims
            assert await h.record(outcome_for(c0, S.COMPLETED, output="late")) == [False]

        self.run_scenario(body)

    def test_closure_cascades_down_the_tree(self) -> None:
        """Cancelling a root cancels its whole unfinished tree, closure after closure."""

        async def body(h: Harness) -> None:
            await h.start_parent("R", ["A", "B"])
            (a,) = await h.claim_ids("A")
            await h.spawn(a, ["A0", "A1"], task_id=TASK_A)
            (a0,) = await h.claim((TASK_A,), now_ms=T0 + 1, limit=1, executor_id=EXECUTOR_2)
            assert a0.execution_id == "A0"
            cancelled = await h.cancel("R", now_ms=T0 + 5, error=ERROR_2)
            assert cancelled is not None
            assert_fields(
                cancelled, status=S.CANCELLED, error=ERROR_2, close_state=CloseState.READY
            )
            total, finished = await h.close_all(now_ms=T0 + 6)
            assert total == 5, total
            assert sorted(finished) == ["A", "A0", "A1", "B"], finished
            for execution_id in ("R", "A", "B", "A0", "A1"):
                assert_fields(h[execution_id], status=S.CANCELLED, close_state=CloseState.CLOSED)
            assert_fields(h["A0"], stop_requested=True, executor_id=EXECUTOR_2)
            for execution_id in ("A", "B", "A1"):
                assert_fields(h[execution_id], stop_requested=False, executor_id=None)
            assert await h.storage.claim_cancellations(executor_id=EXECUTOR_1, limit=9) == []
            assert await h.storage.claim_cancellations(executor_id=EXECUTOR_2, limit=9) == ["A0"]

        self.run_scenario(body)

    def test_cancelled_parent_cancels_its_completion_task(self) -> None:
        """A parent cancelled while waiting for its completion task cancels that task."""

        async def body(h: Harness) -> None:
            await _parent_waiting_for_completion(h, "fc", "fc-fin")
            cancelled = await h.cancel("fc", now_ms=T0 + 1)
            assert cancelled is not None
            assert_fields(cancelled, status=S.CANCELLED, close_state=CloseState.READY)
            total, finished = await h.close_all(now_ms=T0 + 2)
            assert (total, finished) == (2, ["fc-fin"])
            assert_fields(h["fc-fin"], status=S.CANCELLED, close_state=CloseState.CLOSED)
            assert_fields(h["fc"], status=S.CANCELLED, close_state=CloseState.CLOSED)

        self.run_scenario(body)
