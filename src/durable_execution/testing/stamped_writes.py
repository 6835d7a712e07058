"""Conformance of the :class:`~durable_execution.storage.abilities.StampedWrites` ability:
inserted executions and applied outcomes are stored with the time returned for them, and a
root completed by its claimer (or by the executor that inserted it claimed) reads back
exactly as it computes it from those times."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.abilities import StampedWrites, require
from durable_execution.storage.records import ExecutionOutcome, ExecutionRecord, NewExecution
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
    child_of,
    new_execution,
    outcome_for,
)

__all__ = ["StampedWritesConformance"]


class StampedWritesConformance(ConformanceBase):
    """``insert_executions_stamped`` and ``record_outcomes_stamped``: mix it into the test
    class of a backend that has it. It holds whatever the storage's clock: the checks compare
    the stamps with what the storage stores, never with the ``now_ms`` passed."""

    __test__ = False
    ability: ClassVar[type] = StampedWrites
    """The ability this part checks."""

    @staticmethod
    async def _record(h: Harness, *outcomes: ExecutionOutcome, now_ms: int) -> list[int | None]:
        storage = require(h.storage, StampedWrites, "run this part")
        stamps = await storage.record_outcomes_stamped(list(outcomes), now_ms)
        new_ids = [c.execution_id for o in outcomes for c in o.inserted()]
        await h.refresh([o.execution_id for o in outcomes] + new_ids)
        return stamps

    @staticmethod
    async def _insert(h: Harness, *new: NewExecution, now_ms: int) -> tuple[list[str], int]:
        storage = require(h.storage, StampedWrites, "run this part")
        ids, stamp = await storage.insert_executions_stamped(list(new), now_ms)
        await h.refresh(ids)
        assert isinstance(stamp, int), stamp
        return ids, stamp

    async def _completed_from_stamp(
        self, h: Harness, claimed: ExecutionRecord, output: str, now_ms: int
    ) -> None:
        """Complete ``claimed``: every storage object reads the claimed record with the outcome
        applied at the stamp the write returned."""
        outcome = outcome_for(claimed, S.COMPLETED, output=output)
        (stamp,) = await self._record(h, outcome, now_ms=now_ms)
        assert isinstance(stamp, int), stamp
        expected = claimed.copy()
        apply_outcome(expected, outcome, stamp)
        for storage in (h.storage, await h.connect()):
            (stored,) = await storage.get_executions([claimed.execution_id])
            assert_same_record(stored, expected)

    def test_a_root_inserted_claimed_reads_as_made_from_its_stamps(self) -> None:
        """Inserted claimed (direct dispatch) with a start time of the caller's: ``new_record``
        at the insert's stamp, the start time moved by the stamp's distance to ``now_ms``;
        then completed: that record with the outcome applied at the outcome's stamp."""

        async def body(h: Harness) -> None:
            new = NewExecution(
                execution_id="so-direct",
                task_id=TASK_A,
                input='"in"',
                start_at_ms=T0 + 3,
                claimed_by=EXECUTOR_1,
                claim_lease_ms=5_000,
                claim_timeout_ms=LEASES[TASK_A],
                attributes='{"tenant": "b"}',
            )
            _, stamp = await self._insert(h, new, now_ms=T0 + 1)
            claimed = new_record(new, stamp)
            claimed.start_at_ms += stamp - (T0 + 1)
            assert_same_record(await h.get("so-direct"), claimed)
            await self._completed_from_stamp(h, claimed, "42", T0 + 9)

        self.run_scenario(body)

    def test_each_kind_of_insert_returns_what_it_stored(self) -> None:
        """Plain, sleeping, and under an idempotency key: the stamp is the ``created_at`` of
        every execution the call inserted; a key found taken gives its execution's id."""

        async def body(h: Harness) -> None:
            plain = [new_execution(f"so-p{i}", start_at_ms=T0 + 5) for i in range(2)]
            sleeping = dataclasses.replace(
                new_execution("so-s"), unique_id="so-unique", sleep_timeout_ms=60_000
            )
            keyed = new_execution("so-k", idempotency_key="so-key")
            mixed = [sleeping, dataclasses.replace(plain[0], execution_id="so-p2")]
            for batch in (plain, mixed, [keyed]):
                ids, stamp = await self._insert(h, *batch, now_ms=T0 + 1)
                assert ids == [n.execution_id for n in batch]
                for n in batch:
                    stored = h[n.execution_id]
                    assert (stored.created_at_ms, stored.updated_at_ms) == (stamp, stamp)
                    assert stored.start_at_ms == n.start_at_ms + stamp - (T0 + 1)
            assert h["so-s"].expires_at_ms == h["so-s"].created_at_ms + 60_000
            again = dataclasses.replace(keyed, execution_id="so-k2")
            storage = require(h.storage, StampedWrites, "run this part")
            ids, _ = await storage.insert_executions_stamped([again], T0 + 2)
            assert ids == ["so-k"]

        self.run_scenario(body)

    def test_a_claimed_root_reads_as_computed_from_its_stamp(self) -> None:
        """Claimed after a failed attempt and renewed, then completed: the claim's record with
        the outcome applied at the time returned, for every storage object."""

        async def body(h: Harness) -> None:
            await h.insert(new_execution("so-root", priority=2, idempotency_key="so-key"))
            (first,) = await h.claim_ids("so-root", now_ms=T0 + 1)
            retry = outcome_for(first, S.READY, error=ERROR_1, start_at_ms=T0 + 2)
            (retried_at,) = await self._record(h, retry, now_ms=T0 + 2)
            assert retried_at is not None
            assert h["so-root"].updated_at_ms == retried_at
            (claimed,) = await h.claim_ids("so-root", now_ms=T0 + 3)
            assert await h.renew(claimed, now_ms=T0 + 4, lease_ms=10_000) == [True]
            await self._completed_from_stamp(h, claimed, '{"answer": 42}', T0 + 5)

        self.run_scenario(body)

    def test_each_kind_of_write_returns_what_it_stored(self) -> None:
        """Finishing without children, waiting for children, retrying, and handing over to a
        successor: each applied outcome's stamp is its stored ``updated_at``, and
        ``finished_at`` too when it finished."""

        async def body(h: Harness) -> None:
            await h.insert(*(new_execution(f"so-{i}") for i in range(4)))
            done, failed, parent, retried = await h.claim_ids(
                "so-0", "so-1", "so-2", "so-3", now_ms=T0 + 1
            )
            finishing = [
                outcome_for(done, S.COMPLETED, output="1"),
                outcome_for(failed, S.FAILED, error=ERROR_1),
            ]
            stamps = await self._record(h, *finishing, now_ms=T0 + 2)
            for record, stamp in zip((done, failed), stamps, strict=True):
                stored = h[record.execution_id]
                assert stamp is not None
                assert (stored.updated_at_ms, stored.finished_at_ms) == (stamp, stamp)
            others = [
                outcome_for(parent, S.WAITING_FOR_CHILDREN, children=[child_of(parent, "so-c", 0)]),
                outcome_for(retried, S.READY, error=ERROR_1, start_at_ms=T0 + 3),
            ]
            stamps = await self._record(h, *others, now_ms=T0 + 3)
            for record, stamp in zip((parent, retried), stamps, strict=True):
                assert stamp is not None
                assert h[record.execution_id].updated_at_ms == stamp
            (child,) = await h.claim_ids("so-c", now_ms=T0 + 4)
            handing_over = outcome_for(
                child, S.COMPLETED, output="c", successor=child_of(h["so-2"], "so-d", 1)
            )
            (stamp,) = await self._record(h, handing_over, now_ms=T0 + 5)
            stored = h["so-c"]
            assert stamp is not None
            assert (stored.updated_at_ms, stored.finished_at_ms) == (stamp, stamp)

        self.run_scenario(body)

    def test_outcomes_that_do_not_apply_have_no_stamp(self) -> None:
        """A stale lease token beside one that holds: ``None`` for it alone; no outcome, no
        stamp."""

        async def body(h: Harness) -> None:
            await h.insert(new_execution("so-stale"), new_execution("so-fresh"))
            stale, fresh = await h.claim_ids("so-stale", "so-fresh", now_ms=T0 + 1)
            outcomes = [
                outcome_for(stale, S.COMPLETED, output="x", lease_token=stale.lease_token + 1),
                outcome_for(fresh, S.COMPLETED, output="y"),
            ]
            stale_at, fresh_at = await self._record(h, *outcomes, now_ms=T0 + 2)
            assert stale_at is None
            assert fresh_at == h["so-fresh"].updated_at_ms
            assert h["so-stale"].status is S.RUNNING
            assert await self._record(h, now_ms=T0 + 3) == []

        self.run_scenario(body)
