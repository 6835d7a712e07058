"""Conformance of the :class:`~durable_execution.storage.abilities.CallerClock` ability: a root
completed by its claimer reads back exactly as the claimer computes it, with no read."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.abilities import CallerClock, require
from durable_execution.storage.records import ExecutionRecord, NewExecution
from durable_execution.storage.transitions import apply_outcome, new_record
from durable_execution.testing.base import ConformanceBase
from durable_execution.testing.harness import (
    ERROR_1,
    EXECUTOR_1,
    LEASES,
    T0,
    TASK_A,
    Harness,
    assert_same_record,
    new_execution,
    outcome_for,
)

__all__ = ["CallerClockConformance"]


class CallerClockConformance(ConformanceBase):
    """``stores_caller_times``: mix it into the test class of a backend whose storage objects
    (as the suite creates them) answer ``True``."""

    __test__ = False
    ability: ClassVar[type] = CallerClock
    """The ability this part checks."""

    async def _completed_as_computed(
        self, h: Harness, claimed: ExecutionRecord, now_ms: int
    ) -> None:
        """Complete ``claimed`` at ``now_ms``: what every storage object reads is what
        ``apply_outcome`` makes of the claimed record."""
        assert require(h.storage, CallerClock, "run this part").stores_caller_times() is True
        outcome = outcome_for(claimed, S.COMPLETED, output='{"answer": 42}')
        expected = claimed.copy()
        apply_outcome(expected, outcome, now_ms)
        assert await h.record(outcome, now_ms=now_ms) == [True]
        for storage in (h.storage, await h.connect()):
            (stored,) = await storage.get_executions([claimed.execution_id])
            assert_same_record(stored, expected)

    def test_a_claimed_root_reads_as_computed_once_completed(self) -> None:
        """Claimed (after a failed attempt, an expired lease and a renewal, which leave their
        marks on the record), then completed: the claim's record with the outcome applied."""

        async def body(h: Harness) -> None:
            new = dataclasses.replace(
                new_execution("cc-claimed", priority=3, idempotency_key="cc-key"),
                attributes='{"tenant": "a"}',
            )
            await h.insert(new)
            (first,) = await h.claim_ids("cc-claimed", now_ms=T0 + 1)
            retry = outcome_for(first, S.READY, error=ERROR_1, start_at_ms=T0 + 2)
            assert await h.record(retry, now_ms=T0 + 2) == [True]
            await h.claim_ids("cc-claimed", now_ms=T0 + 3)  # its lease expires
            await h.expire(now_ms=T0 + 3 + LEASES[TASK_A] + 1)
            (third,) = await h.claim_ids("cc-claimed", now_ms=T0 + 4 + LEASES[TASK_A])
            assert (third.retry_attempts, third.lease_expiries) == (1, 1)
            renewed = await h.renew(third, now_ms=T0 + 5 + LEASES[TASK_A], lease_ms=10_000)
            assert renewed == [True]
            await self._completed_as_computed(h, third, T0 + 6 + LEASES[TASK_A])

        self.run_scenario(body)

    def test_a_root_inserted_claimed_reads_as_computed_once_completed(self) -> None:
        """Inserted claimed (direct dispatch): ``new_record`` with the insert's time is the
        stored record, and completing it gives what ``apply_outcome`` makes of that."""

        async def body(h: Harness) -> None:
            new = NewExecution(
                execution_id="cc-direct",
                task_id=TASK_A,
                input='"in"',
                start_at_ms=T0,
                claimed_by=EXECUTOR_1,
                claim_lease_ms=5_000,
                claim_timeout_ms=LEASES[TASK_A],
                attributes='{"tenant": "b"}',
            )
            await h.insert(new, now_ms=T0 + 1)
            claimed = new_record(new, T0 + 1)
            assert_same_record(await h.get("cc-direct"), claimed)
            await self._completed_as_computed(h, claimed, T0 + 9)

        self.run_scenario(body)
