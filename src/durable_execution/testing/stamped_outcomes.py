"""Conformance of the :class:`~durable_execution.storage.abilities.StampedOutcomes` ability:
each applied outcome is stored with the time returned for it, and a root completed by its
claimer reads back exactly as the claimer computes it from that time."""

from __future__ import annotations

from typing import ClassVar

from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.abilities import StampedOutcomes, require
from durable_execution.storage.records import ExecutionOutcome
from durable_execution.storage.transitions import apply_outcome
from durable_execution.testing.base import ConformanceBase
from durable_execution.testing.harness import (
    ERROR_1,
    T0,
    Harness,
    assert_same_record,
    child_of,
    new_execution,
    outcome_for,
)

__all__ = ["StampedOutcomesConformance"]


class StampedOutcomesConformance(ConformanceBase):
    """``record_outcomes_stamped``: mix it into the test class of a backend that has it. It
    holds whatever the storage's clock: the checks compare the stamps with what the storage
    stores, never with the ``now_ms`` passed."""

    __test__ = False
    ability: ClassVar[type] = StampedOutcomes
    """The ability this part checks."""

    @staticmethod
    async def _record(h: Harness, *outcomes: ExecutionOutcome, now_ms: int) -> list[int | None]:
        storage = require(h.storage, StampedOutcomes, "run this part")
        stamps = await storage.record_outcomes_stamped(list(outcomes), now_ms)
        new_ids = [c.execution_id for o in outcomes for c in o.inserted()]
        await h.refresh([o.execution_id for o in outcomes] + new_ids)
        return stamps

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
            outcome = outcome_for(claimed, S.COMPLETED, output='{"answer": 42}')
            (stamp,) = await self._record(h, outcome, now_ms=T0 + 5)
            assert isinstance(stamp, int)
            expected = claimed.copy()
            apply_outcome(expected, outcome, stamp)
            for storage in (h.storage, await h.connect()):
                (stored,) = await storage.get_executions(["so-root"])
                assert_same_record(stored, expected)

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
