"""FinishWaiters: waits on many executions, shared ids, timeouts, and the storage poller."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest

from durable_execution.executor import waiters as waiters_module
from durable_execution.executor.finished import FinishedRecords
from durable_execution.executor.waiters import FinishWaiters

from .helpers import wait_until


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
    waiters.notify(["a", "b"])  # finished here while nobody waited
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
    waiters.notify(["a"])  # finished here while nobody waited...
    waiters.notify(["b"])  # ... and forgotten: only one id is remembered
    await asyncio.wait_for(waiters.wait(["a", "b"], None), 5)
    assert storage.asked == [["a"]]


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
