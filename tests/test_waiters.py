"""FinishWaiters: waits on many executions, shared ids, timeouts, and the storage poller."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import pytest

from durable_execution import DurableTaskExecution
from durable_execution.errors import (
    DurableExecutionNotFoundError,
    DurableStorageError,
    WaitTimeoutError,
)
from durable_execution.executor import waiters as waiters_module
from durable_execution.executor.execution_wait import wait_for_execution
from durable_execution.executor.finished import FinishedRecords
from durable_execution.executor.waiters import FinishWaiters
from durable_execution.serialization import JsonSerializer
from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.records import CloseState, ExecutionRecord

from .helpers import wait_until
from .test_finished_records import record


class FinishedIn:
    """A stand-in storage: ``find_finished`` answers from a set the test fills."""

    def __init__(self) -> None:
        self.finished: set[str] = set()
        self.asked: list[list[str]] = []

    async def find_finished(self, ids: Sequence[str]) -> list[str]:
        self.asked.append(list(ids))
        return [i for i in ids if i in self.finished]


def waiters_on(storage: FinishedIn, poll_interval_s: float = 0.01) -> FinishWaiters:
    return FinishWaiters(storage, poll_interval_s, logging.getLogger("test"))  # type: ignore[arg-type]


async def test_a_wait_returns_once_all_its_executions_are_notified() -> None:
    waiters = waiters_on(FinishedIn(), poll_interval_s=60)
    both = asyncio.create_task(waiters.wait(["a", "b"], None))
    only_b = asyncio.create_task(waiters.wait(["b"], None))
    await wait_until(lambda: waiters.pending_ids() == {"a", "b"}, message="waits registered")
    waiters.notify(["b", "unknown"])
    await asyncio.wait_for(only_b, 5)
    assert not both.done()
    waiters.notify(["b"])  # twice is harmless
    assert not both.done()
    waiters.notify(["a"])
    await asyncio.wait_for(both, 5)
    assert waiters.pending_ids() == set()


async def test_a_wait_with_the_same_id_twice_needs_it_once() -> None:
    waiters = waiters_on(FinishedIn(), poll_interval_s=60)
    wait = asyncio.create_task(waiters.wait(["a", "a"], None))
    await wait_until(lambda: waiters.pending_ids() == {"a"}, message="wait registered")
    waiters.notify(["a"])
    await asyncio.wait_for(wait, 5)


async def test_a_wait_on_nothing_returns_at_once() -> None:
    await asyncio.wait_for(waiters_on(FinishedIn()).wait([], None), 5)


async def test_executions_finished_elsewhere_are_found_by_polling() -> None:
    storage = FinishedIn()
    waiters = waiters_on(storage)
    wait = asyncio.create_task(waiters.wait(["a", "b"], None))
    await wait_until(lambda: storage.asked, message="the first check")
    storage.finished.update({"a", "b"})
    await asyncio.wait_for(wait, 5)


async def test_a_timed_out_wait_leaves_nothing_behind() -> None:
    storage = FinishedIn()
    waiters = waiters_on(storage)
    kept = asyncio.create_task(waiters.wait(["b"], None))
    with pytest.raises(TimeoutError):
        await waiters.wait(["a", "b"], 0.05)
    assert waiters.pending_ids() == {"b"}  # the other wait on b stays
    waiters.notify(["b"])
    await asyncio.wait_for(kept, 5)
    assert waiters.pending_ids() == set()


async def test_three_waits_on_one_id_and_one_cancelled() -> None:
    waiters = waiters_on(FinishedIn(), poll_interval_s=60)
    first = asyncio.create_task(waiters.wait(["a"], None))
    second = asyncio.create_task(waiters.wait(["a", "b"], None))
    third = asyncio.create_task(waiters.wait(["a"], None))
    await asyncio.sleep(0)  # one turn of the loop: each wait registers before its first await
    assert waiters.pending_ids() == {"a", "b"}
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    assert waiters.pending_ids() == {"a"}  # the cancelled wait took "b" with it
    waiters.notify(["a"])
    await asyncio.wait_for(asyncio.gather(first, third), 5)
    assert waiters.pending_ids() == set()


async def test_the_first_check_asks_for_each_id_once_in_bounded_chunks() -> None:
    storage = FinishedIn()
    ids = [f"e{i}" for i in range(12_001)]
    storage.finished.update(ids)
    waiters = waiters_on(storage, poll_interval_s=60)  # only the first check can find them
    await asyncio.wait_for(waiters.wait(ids, None), 5)
    assert [len(chunk) for chunk in storage.asked] == [5_000, 5_000, 2_001]
    assert sorted(i for chunk in storage.asked for i in chunk) == sorted(ids)
    assert waiters.pending_ids() == set()


async def test_a_wait_on_executions_just_inserted_skips_the_first_check() -> None:
    storage = FinishedIn()
    waiters = waiters_on(storage, poll_interval_s=60)
    waiters.inserted(["a", "b"])
    wait = asyncio.create_task(waiters.wait(["a", "b", "older"], None))
    await wait_until(lambda: storage.asked, message="the first check")
    assert storage.asked == [["older"]]  # nothing can have finished the new ones yet
    waiters.notify(["a", "b", "older"])
    await asyncio.wait_for(wait, 5)


async def test_a_wait_on_executions_known_finished_returns_without_a_check() -> None:
    storage = FinishedIn()
    waiters = waiters_on(storage, poll_interval_s=60)
    waiters.inserted(["a"])
    waiters.finished.mark_finished(["a", "b"])  # completed here while nobody waited
    waiters.notify(["a", "b"])
    await asyncio.wait_for(waiters.wait(["a", "b"], 0), 5)  # no time needed
    assert storage.asked == []
    assert waiters.pending_ids() == set()


async def test_executions_inserted_and_finished_here_then_forgotten_are_checked() -> None:
    storage = FinishedIn()
    storage.finished.update({"a", "b"})
    waiters = FinishWaiters(
        storage,  # type: ignore[arg-type]
        60,  # only the first check can find them
        logging.getLogger("test"),
        finished=FinishedRecords(max_ids=1),
    )
    waiters.inserted(["a"])
    waiters.finished.mark_finished(["a"])  # completed here while nobody waited...
    waiters.finished.mark_finished(["b"])  # ... and forgotten: only one id is remembered
    waiters.notify(["a", "b"])
    await asyncio.wait_for(waiters.wait(["a", "b"], None), 5)
    assert storage.asked == [["a"]]


async def test_a_wait_on_executions_that_did_not_complete_checks_the_storage() -> None:
    """Only completed executions are remembered as finished: a failed one may be reopened
    by a retry, so a later wait on it checks the storage."""
    storage = FinishedIn()
    waiters = waiters_on(storage, poll_interval_s=60)
    waiters.notify(["failed"])  # finished here, not completed: nothing remembered
    storage.finished.add("failed")
    await asyncio.wait_for(waiters.wait(["failed"], None), 5)
    assert storage.asked == [["failed"]]


async def test_executions_inserted_a_while_ago_are_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(waiters_module, "_FRESH_S", -1.0)  # every insertion is old at once
    storage = FinishedIn()
    storage.finished.add("a")  # finished elsewhere since
    waiters = waiters_on(storage, poll_interval_s=60)
    waiters.inserted(["a"])
    await asyncio.wait_for(waiters.wait(["a"], None), 5)
    assert storage.asked == [["a"]]


async def test_executions_inserted_here_and_finished_elsewhere_are_found_by_polling() -> None:
    storage = FinishedIn()
    storage.finished.add("a")  # another executor raced through it before the wait began
    waiters = waiters_on(storage, poll_interval_s=0.01)
    waiters.inserted(["a"])
    await asyncio.wait_for(waiters.wait(["a"], None), 5)
    assert storage.asked == [["a"]]  # by the poller: there was no first check


async def test_recheck_asks_the_storage_about_an_execution_that_ran_here() -> None:
    storage = FinishedIn()
    running_here = {"a"}
    waiters = FinishWaiters(
        storage,  # type: ignore[arg-type]
        60,  # no poll during the test: only the recheck can find it
        logging.getLogger("test"),
        runs_here=running_here.__contains__,
    )
    wait = asyncio.create_task(waiters.wait(["a"], None))
    await wait_until(lambda: waiters.pending_ids() == {"a"}, message="wait registered")
    await asyncio.sleep(0)  # let the first check pass: it skips what runs here
    assert storage.asked == []
    storage.finished.add("a")  # say, cancelled: its run ended without recording an outcome
    running_here.clear()
    waiters.recheck("a")
    waiters.recheck("not-awaited")  # nobody waits: nothing to ask
    await asyncio.wait_for(wait, 5)
    assert storage.asked == [["a"]]


class FinishedAndStored(FinishedIn):
    """``find_finished`` as :class:`FinishedIn`; ``get_executions`` from ``rows``, held while
    ``gate`` is unset, failing with ``error`` when set."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, ExecutionRecord] = {}
        self.reads: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.error: Exception | None = None

    async def get_executions(self, ids: Sequence[str]) -> list[ExecutionRecord]:
        self.reads.append(list(ids))
        await self.gate.wait()
        if self.error is not None:
            raise self.error
        return [self.rows[i] for i in ids if i in self.rows]


def stored_waiters(storage: FinishedAndStored) -> FinishWaiters:
    return waiters_on(storage, poll_interval_s=60)  # type: ignore[arg-type]


def wait_for(waiters: FinishWaiters, execution_id: str, timeout_s: float | None) -> Any:
    """A handle's wait on ``execution_id`` (as ``handle.wait_and_get_execution`` makes it)."""
    return wait_for_execution(waiters, execution_id, timeout_s, JsonSerializer())


def decoded(stored: ExecutionRecord) -> DurableTaskExecution[Any]:
    return DurableTaskExecution.from_record(stored, JsonSerializer())


async def test_waits_that_read_end_together_with_one_read() -> None:
    storage = FinishedAndStored()
    storage.rows = {i: record(i) for i in ("a", "b", "c")}
    waiters = stored_waiters(storage)
    reads = [wait_for(waiters, i, None) for i in ("a", "b", "c")]
    await wait_until(lambda: waiters.pending_ids() == {"a", "b", "c"}, message="waits")
    assert storage.reads == []  # nothing read before the executions are finished
    waiters.notify(["a", "b", "c"])
    found = await asyncio.wait_for(asyncio.gather(*reads), 5)
    assert found == [decoded(storage.rows[i]) for i in "abc"]
    assert [sorted(r) for r in storage.reads] == [["a", "b", "c"]]
    # Final records: kept, so the next wait needs neither a check nor a read.
    again = wait_for(waiters, "a", 0)
    assert again.done()
    assert await again == decoded(storage.rows["a"])
    assert len(storage.reads) == 1
    assert storage.asked == []


async def test_a_wait_that_ended_in_time_returns_its_read_even_past_the_timeout() -> None:
    storage = FinishedAndStored()
    storage.rows = {"a": record("a")}
    storage.gate.clear()  # the read takes a while
    waiters = stored_waiters(storage)
    reading = wait_for(waiters, "a", 0.2)
    await wait_until(lambda: waiters.pending_ids() == {"a"}, message="the wait")
    waiters.notify(["a"])  # finished in time
    await wait_until(lambda: storage.reads, message="the read")
    await asyncio.sleep(0.3)  # past the timeout, the read still held
    assert not reading.done()
    storage.gate.set()
    assert await asyncio.wait_for(reading, 5) == decoded(storage.rows["a"])


async def test_a_wait_that_reads_times_out_like_any_wait() -> None:
    storage = FinishedAndStored()
    waiters = stored_waiters(storage)
    with pytest.raises(WaitTimeoutError):
        await wait_for(waiters, "a", 0.05)
    assert waiters.pending_ids() == set()
    assert storage.reads == []


async def test_a_failed_read_fails_every_wait_that_shared_it_and_spares_a_cancelled_one() -> None:
    storage = FinishedAndStored()
    storage.error = DurableStorageError("the database is gone")
    storage.gate.clear()
    waiters = stored_waiters(storage)
    reads = [wait_for(waiters, i, None) for i in ("a", "b", "c")]
    await wait_until(lambda: waiters.pending_ids() == {"a", "b", "c"}, message="waits")
    waiters.notify(["a", "b", "c"])
    await wait_until(lambda: storage.reads, message="the read")
    reads[2].cancel()
    storage.gate.set()
    results = await asyncio.gather(*reads, return_exceptions=True)
    assert [type(r) for r in results] == [
        DurableStorageError,
        DurableStorageError,
        asyncio.CancelledError,
    ]
    assert len(storage.reads) == 1


async def test_a_wait_reading_an_execution_reopened_by_a_retry_waits_again() -> None:
    """Found finished, then read unfinished (an operator's retry reopened it meanwhile): the
    wait goes on until it finishes again, then returns it as read then."""
    storage = FinishedAndStored()
    storage.rows = {"a": record("a", S.READY, CloseState.OPEN)}  # reopened
    waiters = stored_waiters(storage)
    wait = wait_for(waiters, "a", 10)
    await wait_until(lambda: waiters.pending_ids() == {"a"}, message="the wait")
    waiters.notify(["a"])  # seen finished before the retry
    await wait_until(lambda: storage.reads == [["a"]], message="the first read")
    await wait_until(lambda: waiters.pending_ids() == {"a"}, message="waiting again")
    assert not wait.done()
    storage.rows = {"a": record("a", output="2")}
    waiters.notify(["a"])
    execution = await asyncio.wait_for(wait, 5)
    assert execution.output == 2
    assert len(storage.reads) == 2


async def test_a_wait_on_an_unknown_execution_raises_not_found() -> None:
    storage = FinishedAndStored()
    storage.finished = {"ghost"}  # find_finished says so; no row to read
    waiters = stored_waiters(storage)
    with pytest.raises(DurableExecutionNotFoundError, match="ghost"):
        await asyncio.wait_for(wait_for(waiters, "ghost", None), 5)


async def test_a_cancelled_handle_wait_is_dropped_at_the_next_check() -> None:
    """Nobody awaits a cancelled wait: the poller drops it at its next look, and stops."""
    storage = FinishedAndStored()
    waiters = waiters_on(storage)  # polls every 10 ms
    wait = wait_for(waiters, "a", None)
    await wait_until(lambda: waiters.pending_ids() == {"a"}, message="the wait")
    wait.cancel()
    await wait_until(lambda: waiters.pending_ids() == set(), message="the wait dropped")
    assert storage.reads == []


async def test_a_handle_wait_runs_as_a_task_in_a_task_group_and_under_wait_for() -> None:
    """What ``wait_and_get_execution`` returns works wherever a coroutine or a future does."""
    storage = FinishedAndStored()
    storage.rows = {i: record(i) for i in ("a", "b", "c", "d")}
    waiters = stored_waiters(storage)
    task = asyncio.create_task(wait_for(waiters, "a", None))
    async with asyncio.TaskGroup() as group:
        grouped = group.create_task(wait_for(waiters, "b", None))
        waiters.notify(["a", "b"])
    assert await task == decoded(storage.rows["a"])
    assert grouped.result() == decoded(storage.rows["b"])
    bounded = asyncio.ensure_future(asyncio.wait_for(wait_for(waiters, "c", 5), 5))
    shielded = asyncio.ensure_future(asyncio.shield(wait_for(waiters, "d", None)))
    await asyncio.sleep(0)
    assert not bounded.done()
    assert not shielded.done()
    waiters.notify(["c", "d"])
    assert await bounded == decoded(storage.rows["c"])
    assert await shielded == decoded(storage.rows["d"])
    (first,) = asyncio.as_completed([wait_for(waiters, "a", None)])
    assert await first == decoded(storage.rows["a"])
    # A task cancelled while it waits gives its wait up.
    pending = wait_for(waiters, "e", None)
    runner = asyncio.create_task(pending)
    await wait_until(lambda: "e" in waiters.pending_ids(), message="the wait on e")
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert pending.cancelled()


async def test_a_handle_wait_thrown_into_gives_the_wait_up_and_raises_it() -> None:
    """Driven by hand as a coroutine: ``throw`` takes an instance, or a class and its
    argument, cancels the wait and raises; ``close`` cancels it too."""
    storage = FinishedAndStored()
    waiters = stored_waiters(storage)
    for thrown in ((ValueError("boom"),), (ValueError, "boom")):
        wait = wait_for(waiters, "a", None)
        assert wait.send(None) is wait  # pending: the task would wait on it
        with pytest.raises(ValueError, match="boom"):
            wait.throw(*thrown)
        assert wait.cancelled()
    closed = wait_for(waiters, "a", None)
    closed.close()
    assert closed.cancelled()
