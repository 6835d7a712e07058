"""Conformance of ``record_outcomes``: fencing, and what each status writes."""

from __future__ import annotations

from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.records import CloseState, ExecutionOutcome
from durable_execution.testing.base import ConformanceBase
from durable_execution.testing.harness import (
    CHILD_TASK,
    COMPLETION_TASK,
    ERROR_1,
    ERROR_2,
    EXECUTOR_2,
    LEASES,
    PARENT_TASK,
    T0,
    TASK_A,
    TASK_B,
    Harness,
    assert_fields,
    assert_new_record,
    assert_same_record,
    child_of,
    ids_of,
    new_execution,
    outcome_for,
)

__all__ = ["OutcomeConformance"]

_UNOWNED = {"executor_id": None, "expires_at_ms": None, "stop_requested": False}


class OutcomeConformance(ConformanceBase):
    """Recording what a claim produced."""

    __test__ = False

    def test_outcome_needs_expected_status_and_lease_token(self) -> None:
        """Only outcomes matching status and token apply; results align with the input."""

        async def body(h: Harness) -> None:
            await h.insert(new_execution("o-a"), new_execution("o-b"), new_execution("o-c"))
            a, b, c = await h.claim()
            applied = await h.record(
                outcome_for(a, S.COMPLETED, output="x", lease_token=a.lease_token + 1),
                outcome_for(b, S.COMPLETED, output="x", expected_status=S.READY),
                ExecutionOutcome("missing", 1, S.RUNNING, S.COMPLETED, output="x"),
                outcome_for(c, S.COMPLETED, output="out-c"),
                outcome_for(a, S.FAILED, error=ERROR_1, lease_token=a.lease_token - 1),
                now_ms=T0 + 1,
            )
            assert applied == [False, False, False, True, False], applied
            assert_same_record(h["o-a"], a)
            assert_same_record(h["o-b"], b)
            assert await h.storage.get_executions(["missing"]) == []
            assert_fields(h["o-c"], status=S.COMPLETED, output="out-c", finished_at_ms=T0 + 1)

        self.run_scenario(body)

    def test_a_batch_applies_as_if_one_by_one_in_order(self) -> None:
        """A batch of mixed outcomes, two of them for one execution, gives the results of
        recording them one at a time, in order (backends may group them, not reorder them)."""

        async def body(h: Harness) -> None:
            ids = ("mx-done", "mx-retry", "mx-fail", "mx-twice", "mx-parent")
            await h.insert(*(new_execution(i) for i in ids[:4]), new_execution(ids[4], PARENT_TASK))
            done, retry, fail, twice, parent = await h.claim_ids(*ids)
            applied = await h.record(
                outcome_for(twice, S.READY, error=ERROR_1, start_at_ms=T0 + 50),
                outcome_for(done, S.COMPLETED, output="d", run_output="r"),
                outcome_for(retry, S.READY, error=ERROR_2, start_at_ms=T0 + 60),
                outcome_for(twice, S.COMPLETED, output="too late"),
                outcome_for(parent, S.WAITING_FOR_CHILDREN, children=[child_of(parent, "mx-c", 0)]),
                outcome_for(fail, S.FAILED, error=ERROR_2),
                outcome_for(done, S.FAILED, error=ERROR_1),
                now_ms=T0 + 7,
            )
            assert applied == [True, True, True, False, True, True, False], applied
            assert_fields(h["mx-done"], status=S.COMPLETED, output="d", run_output="r", error=None)
            assert_fields(h["mx-retry"], status=S.READY, error=ERROR_2, start_at_ms=T0 + 60)
            assert_fields(h["mx-twice"], status=S.READY, error=ERROR_1, output=None)
            assert_fields(h["mx-fail"], status=S.FAILED, error=ERROR_2, finished_at_ms=T0 + 7)
            assert_fields(h["mx-parent"], status=S.WAITING_FOR_CHILDREN, children_count=1)
            assert_fields(h["mx-c"], status=S.READY, parent_execution_id="mx-parent")

        self.run_scenario(body)

    def test_outcome_with_a_stale_token_after_reclaim_is_rejected(self) -> None:
        """After the lease expired and another executor claimed it, the old owner is fenced."""

        async def body(h: Harness) -> None:
            await h.insert(new_execution("stale"))
            (old,) = await h.claim(now_ms=T0)
            later = T0 + LEASES[TASK_A] + 1
            assert await h.expire(now_ms=later) == ["stale"]
            (new,) = await h.claim(now_ms=later, executor_id=EXECUTOR_2)
            assert new.lease_token > old.lease_token
            assert await h.record(outcome_for(old, S.COMPLETED, output="old")) == [False]
            assert_same_record(h["stale"], new)
            assert await h.record(outcome_for(new, S.COMPLETED, output="new")) == [True]
            assert_fields(h["stale"], status=S.COMPLETED, output="new")

        self.run_scenario(body)

    def test_retry_outcome_makes_the_execution_ready_again(self) -> None:
        """``status=ready``: one more retry attempt, the given start time, the error kept."""

        async def body(h: Harness) -> None:
            await h.insert(new_execution("retry"))
            (first,) = await h.claim(now_ms=T0)
            retry = outcome_for(first, S.READY, error=ERROR_1, start_at_ms=T0 + 5_000)
            assert await h.record(retry, now_ms=T0 + 10) == [True]
            assert_fields(
                h["retry"],
                status=S.READY,
                retry_attempts=1,
                start_at_ms=T0 + 5_000,
                error=ERROR_1,
                output=None,
                finished_at_ms=None,
                close_state=CloseState.OPEN,
                **_UNOWNED,
            )
            assert await h.claim(now_ms=T0 + 4_999) == []
            (second,) = await h.claim(now_ms=T0 + 5_000)
            retry = outcome_for(second, S.READY, error=ERROR_2, start_at_ms=T0 + 6_000)
            assert await h.record(retry, now_ms=T0 + 5_001) == [True]
            assert_fields(h["retry"], retry_attempts=2, error=ERROR_2, start_at_ms=T0 + 6_000)
            (third,) = await h.claim(now_ms=T0 + 6_000)
            await h.finish(third, S.COMPLETED, output="done", now_ms=T0 + 9_000)
            assert_fields(
                h["retry"],
                status=S.COMPLETED,
                output="done",
                error=None,
                retry_attempts=2,
                finished_at_ms=T0 + 9_000,
            )

        self.run_scenario(body)

    def test_completed_root_is_closed_at_once(self) -> None:
        """A completed root stores its output, finishes, and needs no closure."""

        async def body(h: Harness) -> None:
            await h.insert(new_execution("done-root"))
            (claimed,) = await h.claim(now_ms=T0)
            await h.finish(claimed, S.COMPLETED, output='{"ok": true}', now_ms=T0 + 10)
            assert_fields(
                h["done-root"],
                status=S.COMPLETED,
                output='{"ok": true}',
                error=None,
                run_output=None,
                finished_at_ms=T0 + 10,
                close_state=CloseState.CLOSED,
                **_UNOWNED,
            )
            assert h["done-root"].is_closed
            assert (await h.close(now_ms=T0 + 11)).closed == 0

        self.run_scenario(body)

    def test_failed_timed_out_and_cancelled_roots_store_their_error(self) -> None:
        """A root finishing without completing stores its error and, childless, closes."""

        async def body(h: Harness) -> None:
            await h.insert(new_execution("r-f"), new_execution("r-t"), new_execution("r-c"))
            c, f, t = await h.claim(now_ms=T0)
            applied = await h.record(
                outcome_for(f, S.FAILED, error=ERROR_1),
                outcome_for(t, S.TIMED_OUT, error=ERROR_2),
                outcome_for(c, S.CANCELLED, error=ERROR_2),
                now_ms=T0 + 3,
            )
            assert applied == [True, True, True]
            for execution_id, status, error in [
                ("r-f", S.FAILED, ERROR_1),
                ("r-t", S.TIMED_OUT, ERROR_2),
                ("r-c", S.CANCELLED, ERROR_2),
            ]:
                assert_fields(
                    h[execution_id],
                    status=status,
                    error=error,
                    output=None,
                    finished_at_ms=T0 + 3,
                    close_state=CloseState.CLOSED,
                    **_UNOWNED,
                )
            assert (await h.close(now_ms=T0 + 4)).closed == 0

        self.run_scenario(body)

    def test_finished_children_wait_for_closure(self) -> None:
        """A finished child with nothing else to close (it has no unfinished child) is
        closed by its outcome, which updates its parent as the closure would: one fewer
        unfinished child, one more failed one unless it completed. In one call or in
        several alike."""

        async def body(h: Harness) -> None:
            await h.start_parent("fp", ["fc0", "fc1", "fc2", "fc3"])
            c0, c1, c2 = await h.claim_ids("fc0", "fc1", "fc2", now_ms=T0 + 1)
            await h.finish(c0, S.COMPLETED, output="out0", now_ms=T0 + 2)
            assert_fields(h["fp"], unfinished_children=3, failed_children=0, updated_at_ms=T0 + 2)
            both = [
                outcome_for(c1, S.FAILED, error=ERROR_1),
                outcome_for(c2, S.TIMED_OUT, error=ERROR_2),
            ]
            assert await h.record(*both, now_ms=T0 + 3) == [True, True]
            expected = [
                ("fc0", "out0", None, T0 + 2),
                ("fc1", None, ERROR_1, T0 + 3),
                ("fc2", None, ERROR_2, T0 + 3),
            ]
            for execution_id, output, error, at in expected:
                assert_fields(
                    h[execution_id],
                    output=output,
                    error=error,
                    finished_at_ms=at,
                    updated_at_ms=at,
                    close_state=CloseState.CLOSED,
                    **_UNOWNED,
                )
            assert_fields(
                h["fp"],
                status=S.WAITING_FOR_CHILDREN,
                children_count=4,
                unfinished_children=1,
                failed_children=2,
                updated_at_ms=T0 + 3,
                close_state=CloseState.OPEN,
            )
            assert (await h.close(now_ms=T0 + 4)).closed == 0

        self.run_scenario(body)

    def test_children_whose_closure_does_more_wait_for_it(self) -> None:
        """An outcome does not close a child whose closure does more than update its parent:
        a completion task (its closure finishes the parent), a child that did not complete
        and has unfinished children (its closure cancels them), or a child whose parent has
        an outcome in the same call. Those are closed by ``close_finished_executions``."""

        async def body(h: Harness) -> None:
            await h.start_parent("wc", ["wc-a", "wc-c"])
            (a,) = await h.claim_ids("wc-a", now_ms=T0 + 1)
            await h.spawn(a, ["wc-a0", "wc-a1"], now_ms=T0 + 1)  # wc-a is a parent too
            a0, a1 = await h.claim_ids("wc-a0", "wc-a1", now_ms=T0 + 2)
            await h.finish(a1, S.FAILED, error=ERROR_1, now_ms=T0 + 2)
            assert_fields(h["wc-a"], unfinished_children=1, failed_children=1)
            (sub,) = await h.claim_parents((CHILD_TASK,), now_ms=T0 + 3)
            # The sub-parent's advance and its last running child's end, in one call.
            both = [
                outcome_for(sub.record, S.CHILDREN_FAILED, error=ERROR_1),
                outcome_for(a0, S.COMPLETED, output="a0"),
            ]
            assert await h.record(*both, now_ms=T0 + 4) == [True, True]
            assert_fields(h["wc-a0"], status=S.COMPLETED, close_state=CloseState.READY)
            assert_fields(
                h["wc-a"],
                status=S.CHILDREN_FAILED,
                unfinished_children=1,
                close_state=CloseState.READY,
            )
            assert_fields(h["wc"], unfinished_children=2, failed_children=0)
            await h.insert(new_execution("wz", PARENT_TASK))
            (root,) = await h.claim_ids("wz", now_ms=T0 + 5)
            final = child_of(root, "wz-fin", 0, task_id=COMPLETION_TASK, is_completion=True)
            waiting = outcome_for(
                root, S.WAITING_FOR_ON_RUN_AND_CHILDREN_COMPLETE, run_output="r", children=[final]
            )
            assert await h.record(waiting, now_ms=T0 + 5) == [True]
            (fin,) = await h.claim_ids("wz-fin", now_ms=T0 + 6)
            await h.finish(fin, S.COMPLETED, output="f", now_ms=T0 + 6)
            assert_fields(h["wz-fin"], close_state=CloseState.READY)
            assert_fields(h["wz"], status=S.WAITING_FOR_ON_RUN_AND_CHILDREN_COMPLETE)
            total, finished = await h.close_all(now_ms=T0 + 7)
            assert (total, finished) == (3, ["wz"]), (total, finished)
            assert_fields(h["wz"], status=S.COMPLETED, output="f")
            assert_fields(h["wc"], unfinished_children=1, failed_children=1)

        self.run_scenario(body)

    def test_a_child_of_a_finished_parent_closes_alone(self) -> None:
        """A child whose parent already finished (cancelled while it ran) is closed by its
        outcome without changing the parent."""

        async def body(h: Harness) -> None:
            await h.start_parent("fz", ["fz-0", "fz-1"])
            c0, _ = await h.claim_ids("fz-0", "fz-1", now_ms=T0 + 1)
            await h.cancel("fz", now_ms=T0 + 2)
            before = await h.get("fz")
            await h.finish(c0, S.COMPLETED, output="late", now_ms=T0 + 3)
            assert_fields(h["fz-0"], status=S.COMPLETED, close_state=CloseState.CLOSED)
            assert_same_record(h["fz"], before)

        self.run_scenario(body)

    def test_waiting_for_children_inserts_the_children(self) -> None:
        """``waiting_for_children`` stores ``run_output`` and inserts the children in order."""

        async def body(h: Harness) -> None:
            await h.insert(new_execution("wp", PARENT_TASK, priority=3))
            (parent,) = await h.claim_ids("wp", now_ms=T0 + 1)
            children = [
                child_of(parent, "kid-z", 0, start_at_ms=T0 + 100, priority=5),
                child_of(parent, "kid-a", 1, task_id=TASK_A, start_at_ms=T0 + 1),
                child_of(parent, "kid-m", 2, task_id=TASK_B, start_at_ms=T0 - 50, priority=-2),
            ]
            spawn = outcome_for(
                parent, S.WAITING_FOR_CHILDREN, run_output='{"run": 1}', children=children
            )
            assert await h.record(spawn, now_ms=T0 + 2) == [True]
            assert_fields(
                h["wp"],
                status=S.WAITING_FOR_CHILDREN,
                run_output='{"run": 1}',
                output=None,
                children_count=3,
                unfinished_children=3,
                failed_children=0,
                child_execution_ids=("kid-z", "kid-a", "kid-m"),
                completion_execution_id=None,
                finished_at_ms=None,
                close_state=CloseState.OPEN,
                **_UNOWNED,
            )
            for child in children:
                assert_new_record(h[child.execution_id], child, T0 + 2)
            # A child can be a parent in turn; its children keep the root.
            (kid,) = await h.claim_ids("kid-z", now_ms=T0 + 100)
            grandchild = child_of(kid, "grandkid", 0, task_id=COMPLETION_TASK)
            nested = outcome_for(kid, S.WAITING_FOR_CHILDREN, children=[grandchild])
            assert await h.record(nested, now_ms=T0 + 101) == [True]
            assert_new_record(h["grandkid"], grandchild, T0 + 101)
            assert_fields(h["grandkid"], root_execution_id="wp", parent_execution_id="kid-z")
            assert_fields(h["kid-z"], child_execution_ids=("grandkid",), children_count=1)
            assert h["wp"].child_execution_ids == ("kid-z", "kid-a", "kid-m")

        self.run_scenario(body)

    def test_waiting_for_completion_task_inserts_it(self) -> None:
        """``waiting_for_on_run_and_children_complete`` inserts the completion task alone."""

        async def body(h: Harness) -> None:
            await h.insert(new_execution("fin-p", PARENT_TASK))
            (parent,) = await h.claim_ids("fin-p", now_ms=T0)
            final = child_of(parent, "fin-task", 0, task_id=COMPLETION_TASK, is_completion=True)
            status = S.WAITING_FOR_ON_RUN_AND_CHILDREN_COMPLETE
            outcome = outcome_for(parent, status, run_output="ro", children=[final])
            assert await h.record(outcome, now_ms=T0 + 1) == [True]
            assert_fields(
                h["fin-p"],
                status=status,
                run_output="ro",
                output=None,
                completion_execution_id="fin-task",
                child_execution_ids=(),
                children_count=0,
                finished_at_ms=None,
                close_state=CloseState.OPEN,
                **_UNOWNED,
            )
            assert_new_record(h["fin-task"], final, T0 + 1)
            assert h["fin-task"].is_completion

        self.run_scenario(body)

    def test_rejected_outcome_inserts_no_children(self) -> None:
        """Children are inserted with their outcome, or not at all."""

        async def body(h: Harness) -> None:
            await h.insert(*(new_execution(i, PARENT_TASK) for i in ("rej-p", "ok-p", "rej-f")))
            rej, ok, rej_f = await h.claim_ids("rej-p", "ok-p", "rej-f")
            final = child_of(rej_f, "rej-fin", 0, task_id=COMPLETION_TASK, is_completion=True)
            applied = await h.record(
                outcome_for(
                    rej,
                    S.WAITING_FOR_CHILDREN,
                    children=[child_of(rej, "rej-c0", 0), child_of(rej, "rej-c1", 1)],
                    lease_token=rej.lease_token + 1,
                ),
                outcome_for(ok, S.WAITING_FOR_CHILDREN, children=[child_of(ok, "ok-c0", 0)]),
                outcome_for(
                    rej_f,
                    S.WAITING_FOR_ON_RUN_AND_CHILDREN_COMPLETE,
                    children=[final],
                    expected_status=S.WAITING_FOR_CHILDREN,
                ),
                now_ms=T0 + 1,
            )
            assert applied == [False, True, False], applied
            gone = await h.storage.get_executions(["rej-c0", "rej-c1", "rej-fin"])
            assert ids_of(gone) == []
            assert_same_record(h["rej-p"], rej)
            assert_same_record(h["rej-f"], rej_f)
            assert_fields(h["ok-p"], status=S.WAITING_FOR_CHILDREN, child_execution_ids=("ok-c0",))
            assert_fields(h["ok-c0"], status=S.READY, task_id=CHILD_TASK)

        self.run_scenario(body)
