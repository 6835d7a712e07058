"""Conformance of the :class:`~durable_execution.storage.abilities.SleepingExecutions` ability:
sleeping executions inserted, never claimed, finished by the first of a wake-up, their
deadline and a cancellation; unique ids unique among the sleeping executions of a task."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

from durable_execution.errors import DuplicateUniqueIdError, DurableExecutionErrorType
from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.abilities import SleepingExecutions, require
from durable_execution.storage.protocol import DurableStorage
from durable_execution.storage.records import CloseState, ExecutionRecord, NewExecution
from durable_execution.testing.base import ConformanceBase
from durable_execution.testing.harness import (
    ERROR_1,
    LEASES,
    T0,
    Harness,
    assert_fields,
    child_of,
    new_execution,
    outcome_for,
)

__all__ = ["SleepingExecutionsConformance"]

SLEEPING_TASK = "sleeping-task"
TIMEOUT_MS = 60_000
"""The sleeping executions' timeout in the scenarios."""


def sleeping(execution: NewExecution, unique_id: str, timeout_ms: int = TIMEOUT_MS) -> NewExecution:
    """``execution`` as a sleeping execution of :data:`SLEEPING_TASK` with ``unique_id``."""
    return dataclasses.replace(
        execution,
        task_id=SLEEPING_TASK,
        input=f'"{unique_id}"',
        unique_id=unique_id,
        sleep_timeout_ms=timeout_ms,
    )


def _ability(storage: DurableStorage) -> SleepingExecutions:
    return require(storage, SleepingExecutions, "run this conformance part")


async def _wake(
    storage: DurableStorage,
    unique_id: str,
    *,
    status: S = S.COMPLETED,
    output: str | None = '"woken"',
    now_ms: int = T0 + 1,
    task_id: str = SLEEPING_TASK,
) -> ExecutionRecord | None:
    return await _ability(storage).wake_up_sleeping_execution(
        task_id,
        unique_id,
        now_ms=now_ms,
        status=status,
        output=output if status is S.COMPLETED else None,
        error=None if status is S.COMPLETED else ERROR_1,
    )


class SleepingExecutionsConformance(ConformanceBase):
    """Sleeping executions: mix it into the test class of a backend that has the ability,
    beside :class:`~durable_execution.testing.StorageConformanceSuite`; it needs nothing more.
    """

    __test__ = False
    ability: ClassVar[type] = SleepingExecutions
    """The ability this part checks."""

    def test_a_sleeping_execution_is_stored_sleeping_and_never_claimed(self) -> None:
        """Inserted ``sleeping`` with its unique id and deadline; no claim takes it."""

        async def body(h: Harness) -> None:
            (record,) = [h[i] for i in await h.insert(sleeping(new_execution("s1"), "u-1"))]
            assert_fields(
                record,
                status=S.SLEEPING,
                unique_id="u-1",
                expires_at_ms=T0 + TIMEOUT_MS,
                executor_id=None,
                close_state=CloseState.OPEN,
            )
            leases = {**LEASES, SLEEPING_TASK: 10_000}
            claimed = await h.storage.claim_ready_executions(
                executor_id="e", lease_ms_by_task=leases, now_ms=T0 + TIMEOUT_MS - 1, limit=10
            )
            assert claimed == []
            assert await h.storage.find_finished(["s1"]) == set()

        self.run_scenario(body)

    def test_a_wakeup_completes_or_fails_it_once(self) -> None:
        """A wake-up finishes it (completed with its output, or failed with its error) and
        returns it; a second wake-up changes nothing and returns it as it is."""

        async def body(h: Harness) -> None:
            await h.insert(
                sleeping(new_execution("s1"), "u-1"), sleeping(new_execution("s2"), "u-2")
            )
            woken = await _wake(h.storage, "u-1", output='"yes"', now_ms=T0 + 5)
            assert woken is not None
            assert_fields(
                woken,
                execution_id="s1",
                status=S.COMPLETED,
                output='"yes"',
                error=None,
                finished_at_ms=T0 + 5,
                expires_at_ms=None,
                close_state=CloseState.CLOSED,  # a root: nothing to close
            )
            failed = await _wake(h.storage, "u-2", status=S.FAILED, now_ms=T0 + 6)
            assert failed is not None
            assert_fields(failed, execution_id="s2", status=S.FAILED, output=None, error=ERROR_1)
            again = await _wake(h.storage, "u-1", output='"no"', now_ms=T0 + 7)
            assert again is not None
            assert_fields(again, status=S.COMPLETED, output='"yes"', finished_at_ms=T0 + 5)
            await h.refresh()
            assert_fields(h["s1"], status=S.COMPLETED, output='"yes"')

        self.run_scenario(body)

    def test_a_wakeup_only_completes_or_fails(self) -> None:
        """Any other status raises ``ValueError`` and changes nothing."""

        async def body(h: Harness) -> None:
            await h.insert(sleeping(new_execution("s1"), "u-1"))
            for status in (S.CANCELLED, S.TIMED_OUT, S.READY, S.SLEEPING):
                try:
                    await _ability(h.storage).wake_up_sleeping_execution(
                        SLEEPING_TASK, "u-1", now_ms=T0 + 1, status=status, error=ERROR_1
                    )
                except ValueError:
                    continue
                raise AssertionError(f"a wake-up to {status.value} was accepted")
            await h.refresh()
            assert h["s1"].status is S.SLEEPING

        self.run_scenario(body)

    def test_an_unknown_unique_id_finds_nothing(self) -> None:
        """``None`` for an id never used, and for a known id of another task."""

        async def body(h: Harness) -> None:
            await h.insert(sleeping(new_execution("s1"), "u-1"))
            assert await _wake(h.storage, "nope") is None
            assert await _wake(h.storage, "u-1", task_id="other-task") is None
            await h.refresh()
            assert h["s1"].status is S.SLEEPING

        self.run_scenario(body)

    def test_a_unique_id_is_unique_among_the_sleeping_executions(self) -> None:
        """A duplicate, stored or in the same call, raises ``DuplicateUniqueIdError`` and
        inserts nothing; the same id on another task is another id."""

        async def body(h: Harness) -> None:
            await h.insert(sleeping(new_execution("s1"), "u-1"))
            try:
                await h.storage.insert_executions(
                    [new_execution("a1"), sleeping(new_execution("s2"), "u-1")], T0
                )
            except DuplicateUniqueIdError:
                pass
            else:
                raise AssertionError("a duplicate unique id was inserted")
            try:
                await h.storage.insert_executions(
                    [sleeping(new_execution("s3"), "u-3"), sleeping(new_execution("s4"), "u-3")],
                    T0,
                )
            except DuplicateUniqueIdError:
                pass
            else:
                raise AssertionError("a unique id repeated in one call was inserted")
            assert await h.storage.get_executions(["a1", "s2", "s3", "s4"]) == []
            other = dataclasses.replace(
                sleeping(new_execution("s5"), "u-1"), task_id="other-sleeping-task"
            )
            await h.insert(other)
            assert h["s5"].status is S.SLEEPING

        self.run_scenario(body)

    def test_an_idempotency_key_returns_the_sleeping_execution_stored_under_it(self) -> None:
        """A second insert under the same idempotency key returns the first execution and
        inserts nothing, its unique id no duplicate."""

        async def body(h: Harness) -> None:
            first = sleeping(new_execution("s1", idempotency_key="k"), "u-1")
            assert await h.storage.insert_executions([first], T0) == ["s1"]
            again = sleeping(new_execution("s2", idempotency_key="k"), "u-1")
            assert await h.storage.insert_executions([again], T0 + 1) == ["s1"]
            assert await h.storage.get_executions(["s2"]) == []
            assert (await h.get("s1")).status is S.SLEEPING

        self.run_scenario(body)

    def test_a_duplicate_child_fails_the_outcome_and_changes_nothing(self) -> None:
        """An outcome inserting a sleeping child whose id is taken raises
        ``DuplicateUniqueIdError``; the parent is still running, as claimed."""

        async def body(h: Harness) -> None:
            await h.insert(sleeping(new_execution("s1"), "u-1"))
            await h.insert(new_execution("p", "parent-task"))
            (parent,) = await h.claim_ids("p")
            child = sleeping(child_of(parent, "c1", 0), "u-1")
            outcome = outcome_for(parent, S.WAITING_FOR_CHILDREN, run_output="r", children=[child])
            try:
                await h.storage.record_outcomes([outcome], T0 + 1)
            except DuplicateUniqueIdError:
                pass
            else:
                raise AssertionError("a child with a duplicate unique id was inserted")
            await h.refresh()
            assert_fields(h["p"], status=S.RUNNING, lease_token=parent.lease_token)
            assert await h.storage.get_executions(["c1"]) == []

        self.run_scenario(body)

    def test_a_finished_executions_unique_id_may_be_used_again(self) -> None:
        """Once woken up (or timed out, or cancelled), its id is free; a wake-up then finds
        the new sleeping execution."""

        async def body(h: Harness) -> None:
            await h.insert(sleeping(new_execution("s1"), "u-1"))
            await _wake(h.storage, "u-1")
            await h.insert(sleeping(new_execution("s2"), "u-1"), now_ms=T0 + 2)
            assert h["s2"].status is S.SLEEPING
            woken = await _wake(h.storage, "u-1", output='"second"', now_ms=T0 + 3)
            assert woken is not None
            assert_fields(woken, execution_id="s2", status=S.COMPLETED, output='"second"')
            assert (await h.get("s1")).output == '"woken"'
            await h.insert(sleeping(new_execution("s3"), "u-1"), now_ms=T0 + 4)
            await h.cancel("s3", now_ms=T0 + 5)
            await h.insert(sleeping(new_execution("s4"), "u-1"), now_ms=T0 + 6)
            assert h["s4"].status is S.SLEEPING

        self.run_scenario(body)

    def test_a_child_woken_up_is_closed_into_its_parent(self) -> None:
        """A woken child is closed like any finished child: its parent counts it, and moves
        on once none is unfinished (a failed one counts as failed)."""

        async def body(h: Harness) -> None:
            await h.insert(new_execution("p", "parent-task"))
            (parent,) = await h.claim_ids("p")
            children = [
                sleeping(child_of(parent, "c1", 0), "u-1"),
                sleeping(child_of(parent, "c2", 1), "u-2"),
            ]
            outcome = outcome_for(parent, S.WAITING_FOR_CHILDREN, run_output="r", children=children)
            assert await h.record(outcome) == [True]
            assert h["c1"].status is S.SLEEPING
            assert_fields(h["p"], unfinished_children=2)
            await _wake(h.storage, "u-1")
            await _wake(h.storage, "u-2", status=S.FAILED)
            await h.close_all(now_ms=T0 + 2)
            await h.refresh()
            assert_fields(h["p"], unfinished_children=0, failed_children=1)
            (advancing,) = await h.claim_parents(now_ms=T0 + 3)
            assert [c.status for c in advancing.children] == [S.COMPLETED, S.FAILED]
            assert advancing.children[0].output == '"woken"'

        self.run_scenario(body)

    def test_the_deadline_times_it_out(self) -> None:
        """Not before its deadline; after it, ``timed_out`` with a non-retryable error of
        type ``timed_out``, earliest first, each once; a wake-up then returns it as it is."""

        async def body(h: Harness) -> None:
            await h.insert(
                sleeping(new_execution("s1"), "u-1", timeout_ms=1_000),
                sleeping(new_execution("s2"), "u-2", timeout_ms=2_000),
                sleeping(new_execution("s3"), "u-3", timeout_ms=3_000),
            )
            ability = _ability(h.storage)
            assert await ability.time_out_sleeping_executions(now_ms=T0 + 1_000, limit=10) == []
            assert await ability.time_out_sleeping_executions(now_ms=T0 + 2_500, limit=1) == ["s1"]
            assert await ability.time_out_sleeping_executions(now_ms=T0 + 2_500, limit=10) == ["s2"]
            assert await ability.time_out_sleeping_executions(now_ms=T0 + 2_500, limit=10) == []
            await h.refresh()
            record = h["s1"]
            assert_fields(
                record, status=S.TIMED_OUT, finished_at_ms=T0 + 2_500, close_state=CloseState.CLOSED
            )
            assert record.error is not None
            assert record.error.error_type is DurableExecutionErrorType.TIMED_OUT
            assert not record.error.is_retryable
            late = await _wake(h.storage, "u-1", now_ms=T0 + 2_600)
            assert late is not None
            assert_fields(late, status=S.TIMED_OUT, output=None)
            assert h["s3"].status is S.SLEEPING

        self.run_scenario(body)

    def test_a_woken_or_cancelled_one_does_not_time_out(self) -> None:
        """The first of the wake-up, the cancellation and the deadline wins."""

        async def body(h: Harness) -> None:
            await h.insert(
                sleeping(new_execution("s1"), "u-1", timeout_ms=1_000),
                sleeping(new_execution("s2"), "u-2", timeout_ms=1_000),
            )
            await _wake(h.storage, "u-1")
            cancelled = await h.cancel("s2", now_ms=T0 + 2)
            assert cancelled is not None
            assert cancelled.status is S.CANCELLED
            assert await h.storage.find_finished(["s2"]) == {"s2"}
            ability = _ability(h.storage)
            assert await ability.time_out_sleeping_executions(now_ms=T0 + 5_000, limit=10) == []
            late = await _wake(h.storage, "u-2", now_ms=T0 + 5_001)
            assert late is not None
            assert_fields(late, execution_id="s2", status=S.CANCELLED)
            assert (await h.cancel("s1", now_ms=T0 + 5_002)) is not None
            assert (await h.get("s1")).status is S.COMPLETED

        self.run_scenario(body)

    def test_concurrent_wakeups_and_the_deadline_have_one_winner(self) -> None:
        """Wake-ups from several storage objects and threads, with the deadline passing and
        a cancellation among them: one finishes each execution, and every caller gets that
        finished execution."""

        async def body(h: Harness) -> None:
            ids = [f"s{n:02d}" for n in range(20)]
            await h.insert(*(sleeping(new_execution(i), f"u-{i}", timeout_ms=10) for i in ids))
            storages = [h.storage, await h.connect(), await h.connect()]

            async def wake_all(storage: DurableStorage, n: int) -> list[ExecutionRecord | None]:
                return [
                    await _wake(storage, f"u-{i}", output=f'"by-{n}"', now_ms=T0 + 20) for i in ids
                ]

            async def time_out(storage: DurableStorage) -> list[str]:
                ability = _ability(storage)
                return await ability.time_out_sleeping_executions(now_ms=T0 + 20, limit=5)

            def waker(
                n: int,
            ) -> Callable[[DurableStorage], Awaitable[list[ExecutionRecord | None]]]:
                return lambda storage: wake_all(storage, n)

            loop = asyncio.get_running_loop()
            with ThreadPoolExecutor(2) as pool:
                in_threads = [
                    loop.run_in_executor(pool, h.run_in_thread(waker(n))) for n in (10, 11)
                ]
                in_loop = [wake_all(storages[n % 3], n) for n in range(4)]
                timeouts = asyncio.gather(*(time_out(storages[n % 3]) for n in range(3)))
                cancel = h.storage.cancel_execution(ids[-1], now_ms=T0 + 20, error=ERROR_1)
                wakes_in_loop, timed_out_batches, _ = await asyncio.gather(
                    asyncio.gather(*in_loop), timeouts, cancel
                )
                wakes = [*wakes_in_loop, *(await asyncio.gather(*in_threads))]
            timed_out = [i for batch in timed_out_batches for i in batch]
            assert len(timed_out) == len(set(timed_out)), timed_out
            await h.refresh()
            for index, execution_id in enumerate(ids):
                final = h[execution_id]
                assert final.is_finished
                seen = [w[index] for w in wakes]
                for record in seen:
                    assert record is not None
                    assert_fields(
                        record, status=final.status, output=final.output, error=final.error
                    )
                if final.status is S.TIMED_OUT:
                    assert execution_id in timed_out
                else:
                    assert execution_id not in timed_out

        self.run_scenario(body)
