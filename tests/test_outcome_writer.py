"""The outcome writer retries a failed write until the end of the claim's lease, as it stands
at each retry: renewals push it back, and once it has passed the outcome is given up."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from durable_execution import DurableStorageError
from durable_execution.executor.writer import OutcomeWriter
from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.memory import InMemoryStorage
from durable_execution.storage.records import ExecutionOutcome, NewExecution
from durable_execution.testing import DelegatingStorage

LOGGER = logging.getLogger("durable_execution.test_writer")


class Clock:
    """A clock that moves 200 ms on each storage call."""

    def __init__(self) -> None:
        self.now = 1_000

    def __call__(self) -> int:
        return self.now


class FailingWrites(DelegatingStorage):
    """``record_outcomes`` fails ``failures`` times, moving the clock each time."""

    def __init__(self, inner: InMemoryStorage, clock: Clock, failures: int) -> None:
        super().__init__(inner)
        self.clock = clock
        self.failures = failures
        self.calls = 0

    async def forward(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "record_outcomes":
            self.calls += 1
            self.clock.now += 200
            if self.calls <= self.failures:
                raise DurableStorageError("injected", is_transient=True)
        return await super().forward(name, *args, **kwargs)


async def claimed_outcome(storage: InMemoryStorage) -> ExecutionOutcome:
    new = NewExecution("w1", "t", "null", 0, claimed_by="me", claim_lease_ms=10**12)
    await storage.insert_executions([new], 0)
    return ExecutionOutcome("w1", 1, S.RUNNING, S.COMPLETED, output="1")


async def write(
    storage: FailingWrites, outcome: ExecutionOutcome, deadline: Callable[[], int]
) -> int | None:
    """What the writer tells of ``outcome``: the time of the write that applied it, or
    ``None``."""
    writer = OutcomeWriter(storage, storage.clock, lambda written: None, LOGGER)
    results: list[tuple[int | None, int | None]] = []
    writer.submit_nowait(outcome, deadline, lambda *told: results.append(told))
    await writer.drain()
    ((written_at_ms, stamped_at_ms),) = results
    assert stamped_at_ms is None  # the in-memory storage does not stamp (it has CallerClock)
    return written_at_ms


async def test_a_write_failing_past_the_lease_end_is_given_up() -> None:
    inner = InMemoryStorage()
    outcome = await claimed_outcome(inner)
    storage = FailingWrites(inner, Clock(), failures=4)
    assert await write(storage, outcome, lambda: 1_500) is None
    assert storage.calls == 3  # at 1,200, 1,400, then 1,600 is past the lease's end
    (record,) = await inner.get_executions(["w1"])
    assert record.status is S.RUNNING


async def test_renewals_push_the_writers_deadline_back() -> None:
    inner = InMemoryStorage()
    outcome = await claimed_outcome(inner)
    clock = Clock()
    storage = FailingWrites(inner, clock, failures=4)

    def lease_end() -> int:  # renewed by heartbeats while the write is retried
        return clock.now + 300

    written_at_ms = await write(storage, outcome, lease_end)
    assert storage.calls == 5
    (record,) = await inner.get_executions(["w1"])
    assert record.status is S.COMPLETED
    assert written_at_ms == record.updated_at_ms  # the time of the write that applied it


async def test_a_failing_written_hook_stops_neither_the_writer_nor_the_callbacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The hook told of each written batch raises: the error is logged, every outcome's own
    callback still runs, and the batch queued behind is written all the same."""
    storage = InMemoryStorage()
    count = 501  # two batches: 500, then 1
    new = [
        NewExecution(f"w{i}", "t", "null", 0, claimed_by="me", claim_lease_ms=10**12)
        for i in range(count)
    ]
    await storage.insert_executions(new, 0)

    def hook(written: Sequence[ExecutionOutcome]) -> None:
        raise RuntimeError("a bug in the hook")

    writer = OutcomeWriter(storage, Clock(), hook, LOGGER)
    told: list[int | None] = []
    for i in range(count):
        outcome = ExecutionOutcome(f"w{i}", 1, S.RUNNING, S.COMPLETED, output=str(i))
        writer.submit_nowait(outcome, lambda: 10**12, lambda at, _: told.append(at))
    await writer.drain()
    assert len(told) == count
    assert None not in told
    records = await storage.get_executions([n.execution_id for n in new])
    assert {r.status for r in records} == {S.COMPLETED}
    assert "telling 500 written outcome(s) failed" in caplog.text
    assert "telling 1 written outcome(s) failed" in caplog.text
