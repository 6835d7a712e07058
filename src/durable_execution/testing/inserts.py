"""Conformance of ``insert_executions`` and ``claim_ready_executions``."""

from __future__ import annotations

from durable_execution.errors import DuplicateExecutionError
from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.records import CloseState, NewExecution
from durable_execution.testing.base import ConformanceBase
from durable_execution.testing.harness import (
    EXECUTOR_1,
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
    ids_of,
    new_execution,
    outcome_for,
)

__all__ = ["InsertAndClaimConformance"]


async def _insert_expecting_duplicate(h: Harness, *executions: NewExecution) -> None:
    try:
        await h.storage.insert_executions(list(executions), T0)
    except DuplicateExecutionError:
        return
    raise AssertionError("insert_executions did not raise DuplicateExecutionError")


class InsertAndClaimConformance(ConformanceBase):
    """Inserting executions, and claiming ready ones."""

    __test__ = False

    def test_insert_round_trips_every_field(self) -> None:
        """Every field of a new execution is stored; the others get their initial values."""

        async def body(h: Harness) -> None:
            full = NewExecution(
                execution_id="rt-root",
                task_id=TASK_A,
                input='{"k": [1, 2, "ü ✓"]}\nsecond line',
                start_at_ms=T0 + 500,
                priority=7,
                idempotency_key="rt-key",
            )
            plain = NewExecution("rt-plain", TASK_B, input="", start_at_ms=T0 - 3)
            assert await h.insert(full, plain, now_ms=T0 + 7) == ["rt-root", "rt-plain"]
            linked = NewExecution(
                execution_id="rt-linked",
                task_id=PARENT_TASK,
                input="linked",
                start_at_ms=T0 - 1,
                root_execution_id="rt-root",
                parent_execution_id="rt-root",
                index_in_parent=4,
                is_completion=True,
                priority=-3,
            )
            assert await h.insert(linked, now_ms=T0 + 9) == ["rt-linked"]
            assert_new_record(await h.get("rt-root"), full, T0 + 7)
            assert_new_record(await h.get("rt-plain"), plain, T0 + 7)
            assert_new_record(await h.get("rt-linked"), linked, T0 + 9)
            for record in h.latest.values():
                assert not record.is_finished
                assert not record.is_closed

        self.run_scenario(body)

    def test_insert_returns_ids_in_the_given_order(self) -> None:
        """The ids returned follow the input order; an empty batch inserts nothing."""

        async def body(h: Harness) -> None:
            order = ["ord3", "ord1", "ord5", "ord2", "ord4"]
            assert await h.insert(*(new_execution(i) for i in order)) == order
            assert ids_of(await h.storage.get_executions(order)) == order
            assert await h.storage.insert_executions([], T0) == []

        self.run_scenario(body)

    def test_insert_duplicate_id_rejects_the_whole_batch(self) -> None:
        """A duplicate id raises DuplicateExecutionError and nothing of the batch is stored."""

        async def body(h: Harness) -> None:
            await h.insert(new_execution("dup", input="original"))
            before = h["dup"]
            await _insert_expecting_duplicate(
                h,
                new_execution("fresh-1", idempotency_key="k-fresh"),
                new_execution("dup", input="other"),
                new_execution("fresh-2"),
            )
            assert await h.storage.get_executions(["fresh-1", "fresh-2"]) == []
            assert_same_record(await h.get("dup"), before)
            # The key of the failed batch was not taken.
            assert await h.insert(new_execution("fresh-3", idempotency_key="k-fresh")) == [
                "fresh-3"
            ]

        self.run_scenario(body)

    def test_insert_duplicate_id_within_one_batch_rejects_it(self) -> None:
        """Two executions with one id in a batch raise, and neither is stored."""

        async def body(h: Harness) -> None:
            await _insert_expecting_duplicate(
                h, new_execution("twin"), new_execution("other"), new_execution("twin")
            )
            assert await h.storage.get_executions(["twin", "other"]) == []

        self.run_scenario(body)

    def test_insert_idempotency_key_returns_the_stored_id(self) -> None:
        """An execution whose key is stored is not inserted; the stored one's id is returned."""

        async def body(h: Harness) -> None:
            assert await h.insert(new_execution("k1", idempotency_key="order-7")) == ["k1"]
            before = h["k1"]
            ids = await h.insert(
                new_execution("k2", TASK_B, idempotency_key="order-7", input="again"),
                new_execution("k3"),
                now_ms=T0 + 1,
            )
            assert ids == ["k1", "k3"]
            assert await h.storage.get_executions(["k2"]) == []
            assert_same_record(h["k1"], before)
            assert h["k3"].status is S.READY

        self.run_scenario(body)

    def test_insert_idempotency_key_within_one_batch(self) -> None:
        """A key repeated inside one batch inserts only its first execution."""

        async def body(h: Harness) -> None:
            ids = await h.insert(
                new_execution("b1", idempotency_key="x"),
                new_execution("b2", idempotency_key="x"),
                new_execution("b3", idempotency_key="y"),
            )
            assert ids == ["b1", "b1", "b3"]
            assert ids_of(await h.storage.get_executions(["b1", "b2", "b3"])) == ["b1", "b3"]

        self.run_scenario(body)

    def test_insert_sent_again_returns_the_stored_ids(self) -> None:
        """Keys are looked up before ids: an execution sent again with its key (an enqueue
        retried after an attempt that did commit) is not inserted, and its id is no
        duplicate; the same id under another key is one."""

        async def body(h: Harness) -> None:
            first = new_execution("again-1", idempotency_key="again-k1")
            assert await h.insert(first, new_execution("again-2")) == ["again-1", "again-2"]
            before = h["again-1"]
            assert await h.insert(first, now_ms=T0 + 1) == ["again-1"]
            assert_same_record(await h.get("again-1"), before)
            twice = new_execution("again-3", idempotency_key="again-k3")
            assert await h.insert(twice, twice, first) == ["again-3", "again-3", "again-1"]
            await _insert_expecting_duplicate(
                h, new_execution("again-1", idempotency_key="again-other")
            )
            await _insert_expecting_duplicate(h, new_execution("again-2"))
            assert await h.storage.get_executions(["again-other"]) == []

        self.run_scenario(body)

    def test_claim_only_due_ready_executions(self) -> None:
        """Only ``ready`` executions with ``start_at_ms <= now_ms`` are claimed."""

        async def body(h: Harness) -> None:
            await h.insert(
                new_execution("due-b", start_at_ms=T0),
                new_execution("due-a", start_at_ms=T0 - 5),
                new_execution("later", start_at_ms=T0 + 1_000),
                new_execution("gone", start_at_ms=T0 - 10),
            )
            # Inserted by a clock ahead of the claimer's: due for it, not for the claimer.
            await h.insert(new_execution("ahead", start_at_ms=T0 + 30_000), now_ms=T0 + 60_000)
            await h.cancel("gone")
            assert ids_of(await h.claim(now_ms=T0)) == ["due-a", "due-b"]
            assert await h.claim(now_ms=T0 + 999) == []
            assert ids_of(await h.claim(now_ms=T0 + 1_000)) == ["later"]
            assert await h.claim(now_ms=T0 + 29_999) == []
            assert ids_of(await h.claim(now_ms=T0 + 30_000)) == ["ahead"]
            assert await h.claim(now_ms=T0 + 100_000) == []
            assert h["gone"].status is S.CANCELLED

        self.run_scenario(body)

    def test_claim_only_listed_tasks(self) -> None:
        """Only executions of the tasks in ``lease_ms_by_task`` are claimed."""

        async def body(h: Harness) -> None:
            await h.insert(
                new_execution("of-a", TASK_A),
                new_execution("of-b", TASK_B),
                new_execution("of-parent", PARENT_TASK),
            )
            assert await h.claim(()) == []
            assert ids_of(await h.claim((TASK_A,))) == ["of-a"]
            assert await h.claim((TASK_A,)) == []
            claimed = await h.claim((PARENT_TASK, TASK_B), now_ms=T0 + 1)
            assert ids_of(claimed) == ["of-b", "of-parent"]
            for record in claimed:
                assert record.expires_at_ms == T0 + 1 + LEASES[record.task_id]

        self.run_scenario(body)

    def test_claim_order_priority_then_start_then_id(self) -> None:
        """Claims go by priority (highest first), then ``start_at_ms``, then execution id."""

        async def body(h: Harness) -> None:
            rows = [
                ("orde", TASK_B, -1, T0 - 1_000),
                ("ordg", TASK_A, 0, T0 - 100),
                ("ordb", TASK_A, 10, T0 - 1),
                ("orda", TASK_B, 0, T0 - 100),
                ("ordd", TASK_B, 10, T0 - 50),
                ("ordf", TASK_A, 0, T0 - 200),
                ("ordc", TASK_A, 10, T0 - 50),
            ]
            await h.insert(*(new_execution(i, t, priority=p, start_at_ms=s) for i, t, p, s in rows))
            assert ids_of(await h.claim(limit=3)) == ["ordc", "ordd", "ordb"]
            assert ids_of(await h.claim(limit=100)) == ["ordf", "orda", "ordg", "orde"]

        self.run_scenario(body)

    def test_claim_respects_limit(self) -> None:
        """At most ``limit`` executions are claimed per call."""

        async def body(h: Harness) -> None:
            await h.insert(*(new_execution(f"lim{i}") for i in range(5)))
            assert ids_of(await h.claim(limit=2)) == ["lim0", "lim1"]
            assert await h.claim(limit=0) == []
            assert ids_of(await h.claim(limit=2)) == ["lim2", "lim3"]
            assert ids_of(await h.claim(limit=10)) == ["lim4"]
            assert await h.claim(limit=10) == []

        self.run_scenario(body)

    def test_claim_makes_running_with_the_lease_of_its_task(self) -> None:
        """A claimed execution is running, owned, started now, leased for its task's lease."""

        async def body(h: Harness) -> None:
            await h.insert(new_execution("lease-a", TASK_A), new_execution("lease-b", TASK_B))
            claimed = await h.claim(now_ms=T0 + 5, executor_id=EXECUTOR_2)
            assert ids_of(claimed) == ["lease-a", "lease-b"]
            for record in claimed:
                assert_fields(
                    record,
                    status=S.RUNNING,
                    executor_id=EXECUTOR_2,
                    started_at_ms=T0 + 5,
                    expires_at_ms=T0 + 5 + LEASES[record.task_id],
                    start_at_ms=T0,
                    created_at_ms=T0,
                    input=f'{{"input-of": "{record.execution_id}"}}',
                    retry_attempts=0,
                    output=None,
                    error=None,
                    finished_at_ms=None,
                    close_state=CloseState.OPEN,
                    stop_requested=False,
                )
                assert record.lease_token > 0
                assert_same_record(record, h[record.execution_id])

        self.run_scenario(body)

    def test_claimed_execution_is_not_claimed_again(self) -> None:
        """A running execution is never claimed again, by anyone, however late."""

        async def body(h: Harness) -> None:
            await h.insert(new_execution("once"))
            (claimed,) = await h.claim()
            other = await h.connect()
            assert await h.claim(storage=other, executor_id=EXECUTOR_2) == []
            late = T0 + 10 * LEASES[TASK_A]
            assert await h.claim(storage=other, executor_id=EXECUTOR_2, now_ms=late) == []
            assert_fields(
                h["once"],
                status=S.RUNNING,
                executor_id=EXECUTOR_1,
                lease_token=claimed.lease_token,
            )

        self.run_scenario(body)

    def test_claim_lease_token_grows_with_every_claim(self) -> None:
        """Each claim hands out a lease token greater than any before it."""

        async def body(h: Harness) -> None:
            await h.insert(new_execution("tok"))
            (first,) = await h.claim(now_ms=T0)
            assert await h.release(("tok", first.lease_token), now_ms=T0 + 1) == [True]
            (second,) = await h.claim(now_ms=T0 + 1)
            expiry = T0 + 2 + LEASES[TASK_A]
            assert await h.expire(now_ms=expiry) == ["tok"]
            (third,) = await h.claim(now_ms=expiry)
            retry = outcome_for(third, S.READY, start_at_ms=expiry)
            assert await h.record(retry, now_ms=expiry) == [True]
            (fourth,) = await h.claim(now_ms=expiry)
            tokens = [r.lease_token for r in (first, second, third, fourth)]
            assert 0 < tokens[0] < tokens[1] < tokens[2] < tokens[3], tokens

        self.run_scenario(body)
