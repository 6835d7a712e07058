"""Conformance of cancellation, lease expiry, release, reads, and the storage lifecycle."""

from __future__ import annotations

from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.records import CloseState
from durable_execution.testing.base import ConformanceBase
from durable_execution.testing.harness import (
    CHILD_TASK,
    ERROR_1,
    ERROR_2,
    EXECUTOR_1,
    EXECUTOR_2,
    LEASES,
    T0,
    TASK_A,
    TASK_B,
    Harness,
    assert_fields,
    assert_same_record,
    ids_of,
    new_execution,
    outcome_for,
)

__all__ = ["CancelExpireReadConformance"]

_FAR = T0 + 10**9


class CancelExpireReadConformance(ConformanceBase):
    """Cancelling, expiring and releasing executions; reading them; storage objects."""

    __test__ = False

    def test_cancel_unknown_execution_returns_none(self) -> None:
        """Cancelling an id no execution has returns None and creates nothing."""

        async def body(h: Harness) -> None:
            assert await h.cancel("nope") is None
            assert await h.storage.get_executions(["nope"]) == []

        self.run_scenario(body)

    def test_cancel_ready_execution(self) -> None:
        """A ready execution becomes cancelled with the error; a child then awaits closure,
        which counts it as failed for its parent."""

        async def body(h: Harness) -> None:
            await h.insert(new_execution("cr"))
            cancelled = await h.cancel("cr", now_ms=T0 + 3, error=ERROR_2)
            assert cancelled is not None
            assert_same_record(cancelled, h["cr"])
            assert_fields(
                cancelled,
                status=S.CANCELLED,
                error=ERROR_2,
                output=None,
                finished_at_ms=T0 + 3,
                executor_id=None,
                stop_requested=False,
                close_state=CloseState.CLOSED,  # a root with nothing to close
            )
            await h.start_parent("cp", ["cp-0", "cp-1"])
            child = await h.cancel("cp-0", now_ms=T0 + 4, error=ERROR_1)
            assert child is not None
            assert_fields(child, status=S.CANCELLED, error=ERROR_1, close_state=CloseState.READY)
            assert_fields(h["cp"], unfinished_children=2, failed_children=0)
            assert (await h.close(now_ms=T0 + 5)).closed == 1
            assert_fields(h["cp"], unfinished_children=1, failed_children=1)
            assert ids_of(await h.claim((CHILD_TASK,), now_ms=_FAR)) == ["cp-1"]
            assert await h.claim((TASK_A,), now_ms=_FAR) == []

        self.run_scenario(body)

    def test_cancel_running_execution(self) -> None:
        """A running execution is cancelled and flagged; its owner can no longer write."""

        async def body(h: Harness) -> None:
            await h.insert(new_execution("cx"))
            (claimed,) = await h.claim(now_ms=T0, executor_id=EXECUTOR_1)
            cancelled = await h.cancel("cx", now_ms=T0 + 3, error=ERROR_2)
            assert cancelled is not None
            assert_fields(
                cancelled,
                status=S.CANCELLED,
                error=ERROR_2,
                finished_at_ms=T0 + 3,
                executor_id=EXECUTOR_1,
                stop_requested=True,
            )
            assert cancelled.lease_token != claimed.lease_token
            applied = await h.record(
                outcome_for(claimed, S.COMPLETED, output="late"),
                outcome_for(claimed, S.FAILED, error=ERROR_1, expected_status=S.CANCELLED),
                now_ms=T0 + 4,
            )
            assert applied == [False, False]
            assert await h.release(("cx", claimed.lease_token), now_ms=T0 + 4) == [False]
            assert await h.expire(now_ms=_FAR) == []
            assert_same_record(h["cx"], cancelled)
            claims = await h.storage.claim_cancellations(executor_id=EXECUTOR_1, limit=10)
            assert claims == ["cx"], claims

        self.run_scenario(body)

    def test_cancel_finished_execution_leaves_it_unchanged(self) -> None:
        """Cancelling a finished execution returns it as it was."""

        async def body(h: Harness) -> None:
            await h.insert(new_execution("cd"), new_execution("cf"))
            done, failed = await h.claim(now_ms=T0)
            await h.finish(done, S.COMPLETED, output="out", now_ms=T0 + 1)
            await h.finish(failed, S.FAILED, error=ERROR_1, now_ms=T0 + 1)
            for execution_id in ("cd", "cf"):
                before = h[execution_id]
                after = await h.cancel(execution_id, now_ms=T0 + 2, error=ERROR_2)
                assert after is not None
                assert_same_record(after, before)
                assert_same_record(h[execution_id], before)

        self.run_scenario(body)

    def test_cancel_is_idempotent(self) -> None:
        """Cancelling twice changes nothing the second time."""

        async def body(h: Harness) -> None:
            await h.insert(new_execution("ci"), new_execution("cj", TASK_B))
            await h.claim((TASK_B,), now_ms=T0)
            first = await h.cancel("ci", now_ms=T0 + 1, error=ERROR_1)
            again = await h.cancel("ci", now_ms=T0 + 2, error=ERROR_2)
            assert first is not None
            assert again is not None
            assert_same_record(again, first)
            running_first = await h.cancel("cj", now_ms=T0 + 1, error=ERROR_1)
            running_again = await h.cancel("cj", now_ms=T0 + 2, error=ERROR_2)
            assert running_first is not None
            assert running_again is not None
            assert_same_record(running_again, running_first)
            claims = await h.storage.claim_cancellations(executor_id=EXECUTOR_1, limit=10)
            assert claims == ["cj"], claims

        self.run_scenario(body)

    def test_claim_cancellations_returns_and_clears_own_flags(self) -> None:
        """Each executor gets its own cancelled executions, up to ``limit``, once."""

        async def body(h: Harness) -> None:
            await h.insert(*(new_execution(f"cc-a{i}") for i in (1, 2, 3)))
            await h.insert(new_execution("cc-b1", TASK_B))
            await h.claim((TASK_A,), executor_id=EXECUTOR_1)
            await h.claim((TASK_B,), executor_id=EXECUTOR_2)
            for execution_id in ("cc-a1", "cc-a2", "cc-b1"):
                await h.cancel(execution_id)
            storage = h.storage
            assert await storage.claim_cancellations(executor_id="executor-3", limit=9) == []
            first = await storage.claim_cancellations(executor_id=EXECUTOR_1, limit=1)
            rest = await storage.claim_cancellations(executor_id=EXECUTOR_1, limit=10)
            assert len(first) == 1, first
            assert sorted(first + rest) == ["cc-a1", "cc-a2"], (first, rest)
            assert await storage.claim_cancellations(executor_id=EXECUTOR_1, limit=10) == []
            assert await storage.claim_cancellations(executor_id=EXECUTOR_2, limit=9) == ["cc-b1"]
            assert await storage.claim_cancellations(executor_id=EXECUTOR_2, limit=9) == []
            await h.refresh()
            for execution_id in ("cc-a1", "cc-a2"):
                assert_fields(
                    h[execution_id],
                    status=S.CANCELLED,
                    stop_requested=False,
                    executor_id=EXECUTOR_1,
                )
            assert_fields(h["cc-a3"], status=S.RUNNING, stop_requested=False)

        self.run_scenario(body)

    def test_expire_leases_returns_expired_running_executions_to_ready(self) -> None:
        """Exactly the running executions with ``expires_at_ms < now_ms`` become ready."""

        async def body(h: Harness) -> None:
            await h.insert(new_execution("ex-a", TASK_A), new_execution("ex-b", TASK_B))
            (first,) = await h.claim((TASK_A,), now_ms=T0)
            retry = outcome_for(first, S.READY, error=ERROR_1, start_at_ms=T0)
            assert await h.record(retry, now_ms=T0) == [True]
            a, b = await h.claim(now_ms=T0)
            b_before = h["ex-b"]
            lease_a = LEASES[TASK_A]
            assert await h.expire(now_ms=T0 + lease_a) == []
            assert await h.expire(now_ms=T0 + lease_a + 1) == ["ex-a"]
            assert_fields(
                h["ex-a"],
                status=S.READY,
                executor_id=None,
                expires_at_ms=None,
                retry_attempts=1,
                start_at_ms=T0 + lease_a + 1,
                finished_at_ms=None,
                close_state=CloseState.OPEN,
            )
            assert_same_record(h["ex-b"], b_before)
            late = outcome_for(a, S.COMPLETED, output="late")
            assert await h.record(late, now_ms=T0 + lease_a + 2) == [False]
            assert await h.expire(now_ms=T0 + lease_a + 1) == []
            assert await h.expire(now_ms=T0 + LEASES[TASK_B] + 1) == ["ex-b"]
            assert await h.record(outcome_for(b, S.COMPLETED, output="late")) == [False]
            again = await h.claim(now_ms=T0 + LEASES[TASK_B] + 1)
            assert ids_of(again) == ["ex-a", "ex-b"]

        self.run_scenario(body)

    def test_expire_leases_ignores_what_is_not_running(self) -> None:
        """A leased parent, and cancelled, ready or finished executions, never expire."""

        async def body(h: Harness) -> None:
            await h.advanceable_parent("en", ["en-c"])
            assert len(await h.claim_parents(now_ms=T0, lease_ms=1_000)) == 1
            await h.insert(new_execution("ec"), new_execution("eo"), new_execution("er"))
            cancelled, done = await h.claim((TASK_A,), limit=2)
            await h.cancel(cancelled.execution_id)
            await h.finish(done, S.COMPLETED, output="x")
            before = dict(h.latest)
            assert await h.expire(now_ms=_FAR) == []
            for execution_id, record in before.items():
                assert_same_record(h[execution_id], record)

        self.run_scenario(body)

    def test_expire_leases_respects_limit(self) -> None:
        """At most ``limit`` leases expire per call."""

        async def body(h: Harness) -> None:
            await h.insert(*(new_execution(f"el{i}") for i in range(3)))
            await h.claim(now_ms=T0)
            first = await h.expire(now_ms=_FAR, limit=2)
            second = await h.expire(now_ms=_FAR, limit=2)
            assert (len(first), len(second)) == (2, 1), (first, second)
            assert sorted(first + second) == ["el0", "el1", "el2"]
            assert await h.expire(now_ms=_FAR, limit=2) == []
            assert all(r.status is S.READY for r in h.latest.values())

        self.run_scenario(body)

    def test_release_executions(self) -> None:
        """Only running executions with a matching lease token are released, as ready."""

        async def body(h: Harness) -> None:
            await h.insert(*(new_execution(i) for i in ("rl-a", "rl-b", "rl-c")))
            (first,) = await h.claim(now_ms=T0, limit=1)
            retry = outcome_for(first, S.READY, error=ERROR_1, start_at_ms=T0)
            assert await h.record(retry, now_ms=T0) == [True]
            a, b, c = await h.claim(now_ms=T0)
            released = await h.release(
                ("rl-a", a.lease_token),
                ("rl-b", b.lease_token + 1),
                ("missing", 1),
                ("rl-c", c.lease_token),
                now_ms=T0 + 7,
            )
            assert released == [True, False, False, True], released
            for execution_id, attempts in (("rl-a", 1), ("rl-c", 0)):
                assert_fields(
                    h[execution_id],
                    status=S.READY,
                    executor_id=None,
                    expires_at_ms=None,
                    retry_attempts=attempts,
                    start_at_ms=T0 + 7,
                )
            assert_same_record(h["rl-b"], b)
            assert await h.release(("rl-a", a.lease_token), now_ms=T0 + 8) == [False]
            await h.finish(b, S.COMPLETED, output="x", now_ms=T0 + 8)
            assert await h.release(("rl-b", b.lease_token), now_ms=T0 + 9) == [False]
            assert h["rl-b"].status is S.COMPLETED
            assert ids_of(await h.claim(now_ms=T0 + 7)) == ["rl-a", "rl-c"]

        self.run_scenario(body)

    def test_get_executions_in_given_order_skipping_unknown(self) -> None:
        """Executions come back in the order asked; unknown ids are skipped."""

        async def body(h: Harness) -> None:
            await h.insert(*(new_execution(i) for i in ("gx", "gy", "gz")))
            found = await h.storage.get_executions(["gz", "nope", "gx", "gy"])
            assert ids_of(found) == ["gz", "gx", "gy"]
            assert await h.storage.get_executions([]) == []
            assert await h.storage.get_executions(["nope"]) == []

        self.run_scenario(body)

    def test_find_finished_returns_exactly_the_finished_ones(self) -> None:
        """``find_finished`` is the finished subset, closed or not."""

        async def body(h: Harness) -> None:
            await h.insert(*(new_execution(i) for i in ("ff-c", "ff-f", "ff-r", "ff-x", "ff-y")))
            done, failed, _ = await h.claim(limit=3)
            await h.finish(done, S.COMPLETED, output="x")
            await h.finish(failed, S.FAILED, error=ERROR_1)
            await h.cancel("ff-x")
            await h.start_parent("ff-p", ["ff-p0", "ff-p1"])
            (child,) = await h.claim_ids("ff-p0")
            await h.finish(child, S.COMPLETED, output="y")
            asked = {*h.latest, "nope"}
            found = await h.storage.find_finished(asked)
            assert found == {"ff-c", "ff-f", "ff-x", "ff-p0"}, found
            assert await h.storage.find_finished(set()) == set()
            assert await h.storage.find_finished(["ff-r", "ff-p", "nope"]) == set()

        self.run_scenario(body)

    def test_storage_objects_share_one_store(self) -> None:
        """``initialize`` is idempotent; a reconnected object sees and changes the same
        executions; ``close`` is idempotent."""

        async def body(h: Harness) -> None:
            await h.storage.initialize()
            await h.storage.initialize()
            await h.insert(new_execution("shared"))
            other = await h.connect()
            assert ids_of(await other.get_executions(["shared"])) == ["shared"]
            (claimed,) = await h.claim(storage=other, executor_id=EXECUTOR_2)
            assert_fields(h["shared"], status=S.RUNNING, executor_id=EXECUTOR_2)
            assert await other.find_finished(["shared"]) == set()
            await h.finish(claimed, S.COMPLETED, output="x")
            assert await other.find_finished(["shared"]) == {"shared"}
            if other is not h.storage:
                await other.close()
                await other.close()

        self.run_scenario(body)
