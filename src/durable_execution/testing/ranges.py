"""Conformance of the integer range: a value a storage cannot keep is refused whole.

Times, priorities and leases are kept as signed 64-bit integers. An operation given a value
outside that range (or a lease that would end outside it) raises
:class:`~durable_execution.errors.DurableStorageError`, never a driver's raw error such as
``OverflowError``, is not transient, and changes nothing; the storage keeps working.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable

from durable_execution.errors import DurableStorageError
from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.testing.base import ConformanceBase
from durable_execution.testing.harness import (
    EXECUTOR_1,
    LEASES,
    T0,
    TASK_A,
    TASK_B,
    Harness,
    assert_fields,
    child_of,
    ids_of,
    new_execution,
    outcome_for,
)

__all__ = ["IntegerRangeConformance"]

TOO_BIG = 2**63
"""The first integer above the signed 64-bit range."""


async def _refused(operation: Awaitable[object]) -> None:
    error: DurableStorageError | None = None
    try:
        await operation
    except DurableStorageError as exc:
        error = exc
    except Exception as exc:
        raise AssertionError(f"expected DurableStorageError, got {exc!r}") from exc
    assert error is not None, "the out-of-range value was accepted"
    assert not error.is_transient, f"an out-of-range value is not transient: {error!r}"


class IntegerRangeConformance(ConformanceBase):
    """Values outside the signed 64-bit range are refused with ``DurableStorageError``."""

    __test__ = False

    def test_insert_refuses_out_of_range_values_and_stores_nothing(self) -> None:
        """A priority or start time beyond 64 bits fails the whole insert (nothing of the
        batch is stored), and so does a claimed insert whose lease would end beyond it."""

        async def body(h: Harness) -> None:
            fine = new_execution("range-fine")
            batches = [
                [fine, new_execution("range-prio", priority=TOO_BIG)],
                [fine, new_execution("range-low", priority=-TOO_BIG - 1)],
                [fine, new_execution("range-start", start_at_ms=TOO_BIG)],
                [
                    fine,
                    dataclasses.replace(
                        new_execution("range-lease"),
                        claimed_by=EXECUTOR_1,
                        claim_lease_ms=TOO_BIG - T0,
                    ),
                ],
            ]
            for batch in batches:
                await _refused(h.storage.insert_executions(batch, T0))
            assert await h.storage.get_executions([e.execution_id for e in batches[0]]) == []
            assert await h.insert(fine) == ["range-fine"]  # and the storage still works

        self.run_scenario(body)

    def test_a_claim_whose_lease_would_end_out_of_range_claims_nothing(self) -> None:
        """A claim with a lease beyond 64 bits (for any of its tasks) fails whole and takes
        nothing; the same claim with sane leases then takes the executions."""

        async def body(h: Harness) -> None:
            await h.insert(new_execution("range-a"), new_execution("range-b", TASK_B))
            for leases in ({TASK_A: TOO_BIG}, {TASK_A: LEASES[TASK_A], TASK_B: TOO_BIG - T0}):
                await _refused(
                    h.storage.claim_ready_executions(
                        executor_id=EXECUTOR_1, lease_ms_by_task=leases, now_ms=T0, limit=10
                    )
                )
            await h.refresh()
            assert_fields(h["range-a"], status=S.READY, lease_token=0)
            assert_fields(h["range-b"], status=S.READY, lease_token=0)
            assert sorted(ids_of(await h.claim())) == ["range-a", "range-b"]

        self.run_scenario(body)

    def test_outcomes_and_advance_claims_out_of_range_are_refused(self) -> None:
        """A retry time or a child beyond 64 bits fails the outcome (nothing applies); a
        parents' claim whose lease would end beyond it takes nothing."""

        async def body(h: Harness) -> None:
            await h.insert(new_execution("range-run"))
            (record,) = await h.claim_ids("range-run")
            retry = outcome_for(record, S.READY, start_at_ms=TOO_BIG)
            child = child_of(record, "range-child", 0, priority=TOO_BIG)
            spawn = outcome_for(record, S.WAITING_FOR_CHILDREN, run_output="x", children=[child])
            for outcome in (retry, spawn):
                await _refused(h.storage.record_outcomes([outcome], T0))
            await h.refresh()
            assert_fields(h["range-run"], status=S.RUNNING, lease_token=record.lease_token)
            assert await h.storage.get_executions(["range-child"]) == []
            await _refused(
                h.storage.claim_parents_to_advance(
                    task_ids=[TASK_A], now_ms=T0, lease_ms=TOO_BIG, limit=10
                )
            )
            await h.finish(record, S.COMPLETED, output="done")

        self.run_scenario(body)
