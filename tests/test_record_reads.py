"""RecordReads: reads coalesced into one storage call per turn, answered from memory when final."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from durable_execution.errors import DurableStorageError
from durable_execution.executor.finished import FinishedRecords
from durable_execution.executor.reads import RecordReads
from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.records import CloseState, ExecutionRecord

from .helpers import wait_until
from .test_finished_records import record


class Stored:
    """A stand-in storage: ``get_executions`` answers from ``rows``, records each call, and
    can be held (``gate``) or made to fail (``error``)."""

    def __init__(self, *records: ExecutionRecord) -> None:
        self.rows = {r.execution_id: r for r in records}
        self.calls: list[list[str]] = []
        self.gate: asyncio.Event | None = None
        self.error: Exception | None = None

    async def get_executions(self, ids: Sequence[str]) -> list[ExecutionRecord]:
        self.calls.append(list(ids))
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        return [self.rows[i] for i in ids if i in self.rows]


def reads_on(storage: Stored, finished: FinishedRecords | None = None) -> RecordReads:
    return RecordReads(storage, finished if finished is not None else FinishedRecords())  # type: ignore[arg-type]


def unfinished(execution_id: str) -> ExecutionRecord:
    return record(execution_id, S.RUNNING, CloseState.OPEN)


async def test_a_lone_read_is_made_at_once_by_its_caller() -> None:
    """Nothing in flight: the caller reads itself, and a storage that answers without
    suspending (SQLite's small reads) costs it no turn of the event loop."""
    storage = Stored(record("e0"), record("e1"))
    reads = reads_on(storage)
    turns = 0

    def turned() -> None:
        nonlocal turns
        turns += 1

    asyncio.get_running_loop().call_soon(turned)
    assert (await reads.read_one("e0")) is storage.rows["e0"]
    assert (await reads.read(["e1"])) == {"e1": storage.rows["e1"]}
    assert turns == 0
    assert storage.calls == [["e0"], ["e1"]]


async def test_reads_asked_while_one_is_in_flight_are_one_storage_call() -> None:
    storage = Stored(*(record(f"e{i}") for i in range(50)))
    storage.gate = asyncio.Event()
    reads = reads_on(storage)
    first = asyncio.create_task(reads.read_one("e0"))
    await wait_until(lambda: storage.calls, message="the first read")
    others = asyncio.gather(*(reads.read_one(f"e{i}") for i in range(1, 50)))
    await asyncio.sleep(0)
    storage.gate.set()
    found = [await first, *await asyncio.wait_for(others, 5)]
    assert [r.execution_id if r else None for r in found] == [f"e{i}" for i in range(50)]
    assert len(storage.calls) == 2
    assert sorted(storage.calls[1]) == sorted(f"e{i}" for i in range(1, 50))


async def test_final_records_are_answered_from_memory_others_read_again() -> None:
    storage = Stored(record("done"), unfinished("running"))
    reads = reads_on(storage)
    assert await reads.read(["done", "running", "unknown"]) == {
        "done": storage.rows["done"],
        "running": storage.rows["running"],
    }
    storage.calls.clear()
    assert await reads.read_one("done") is storage.rows["done"]
    assert storage.calls == []
    assert await reads.read_one("running") is storage.rows["running"]
    assert await reads.read_one("unknown") is None
    assert storage.calls == [["running"], ["unknown"]]  # fresh each time


async def test_a_read_in_flight_is_never_joined_later_reads_share_the_next() -> None:
    storage = Stored(unfinished("a"), unfinished("b"), unfinished("c"))
    storage.gate = asyncio.Event()
    reads = reads_on(storage)
    first = asyncio.create_task(reads.read_one("a"))
    await wait_until(lambda: storage.calls, message="the first read")
    later = [asyncio.create_task(reads.read_one(i)) for i in ("a", "b", "c")]
    await asyncio.sleep(0)
    assert storage.calls == [["a"]]  # the others wait for it to end: it may be stale for them
    storage.gate.set()
    await asyncio.wait_for(asyncio.gather(first, *later), 5)
    assert storage.calls == [["a"], ["a", "b", "c"]]


async def test_a_failed_read_fails_each_of_its_callers() -> None:
    storage = Stored(unfinished("a"), unfinished("b"))
    storage.error = DurableStorageError("the database is gone")
    storage.gate = asyncio.Event()
    reads = reads_on(storage)
    first = asyncio.create_task(reads.read_one("a"))
    await wait_until(lambda: storage.calls, message="the first read")
    shared = asyncio.gather(reads.read(["a", "b"]), reads.read_one("b"), return_exceptions=True)
    await asyncio.sleep(0)
    storage.gate.set()
    results = [*await asyncio.wait_for(shared, 5)]
    with pytest.raises(DurableStorageError):
        await first
    assert len(storage.calls) == 2  # the first caller's own, then one shared by the others
    assert all(isinstance(r, DurableStorageError) for r in results), results
    storage.error = None  # the next read goes to the storage again
    storage.gate = None
    assert await reads.read_one("a") is storage.rows["a"]


async def test_a_cancelled_caller_leaves_the_shared_read_to_the_others() -> None:
    storage = Stored(record("a"), record("b"), record("c"))
    storage.gate = asyncio.Event()
    reads = reads_on(storage)
    first = asyncio.create_task(reads.read_one("a"))
    await wait_until(lambda: storage.calls, message="the first read")
    cancelled = asyncio.create_task(reads.read_one("b"))
    kept = asyncio.create_task(reads.read_one("c"))
    await asyncio.sleep(0)
    cancelled.cancel()
    storage.gate.set()
    assert await asyncio.wait_for(kept, 5) is storage.rows["c"]
    assert await first is storage.rows["a"]
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert storage.calls == [["a"], ["b", "c"]]


async def test_a_cancelled_lone_reader_lets_the_reads_queued_behind_it_go_on() -> None:
    storage = Stored(record("a"), record("b"))
    storage.gate = asyncio.Event()
    reads = reads_on(storage)
    first = asyncio.create_task(reads.read_one("a"))
    await wait_until(lambda: storage.calls, message="the first read")
    queued = asyncio.create_task(reads.read_one("b"))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    storage.gate.set()
    assert await asyncio.wait_for(queued, 5) is storage.rows["b"]
    assert storage.calls == [["a"], ["b"]]


async def test_a_read_for_a_wait_brings_the_roots_finished_here_along() -> None:
    storage = Stored(*(record(f"e{i}") for i in range(5)))
    finished = FinishedRecords()
    for i in range(1, 5):
        finished.mark_to_read(f"e{i}")
    reads = reads_on(storage, finished)
    await reads.read_one("e0")  # not for a wait: nothing brought along
    assert storage.calls == [["e0"]]
    await reads.read_one("e0", read_ahead=True)  # final: from memory, no read at all
    storage.rows["e9"] = unfinished("e9")
    await reads.read_one("e9", read_ahead=True)
    assert storage.calls == [["e0"], ["e9", "e1", "e2", "e3", "e4"]]
    assert all(finished.get(f"e{i}") is not None for i in range(5))
    assert await reads.read([f"e{i}" for i in range(5)]) == {
        f"e{i}": storage.rows[f"e{i}"] for i in range(5)
    }
    assert len(storage.calls) == 2
