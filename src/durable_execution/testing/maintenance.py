"""Conformance of the :class:`~durable_execution.storage.abilities.Maintenance` ability: the
housekeeping pass changes no read, honours its interval, and checks its argument."""

from __future__ import annotations

from typing import ClassVar

from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.abilities import Maintenance, require
from durable_execution.storage.protocol import DurableStorage
from durable_execution.testing.base import ConformanceBase
from durable_execution.testing.harness import T0, Harness, assert_same_record, new_execution

__all__ = ["MaintenanceConformance"]

HOUR_MS = 3_600_000


def _maintenance(storage: DurableStorage) -> Maintenance:
    return require(storage, Maintenance, "run this conformance part")


class MaintenanceConformance(ConformanceBase):
    """``maintain``: mix it into the test class of a backend that has the ability."""

    __test__ = False
    ability: ClassVar[type] = Maintenance
    """The ability this part checks."""

    def test_a_pass_changes_no_read(self) -> None:
        """Finished, running and ready executions read the same after passes, from this
        storage object and another; the queue goes on as before."""

        async def body(h: Harness) -> None:
            await h.insert(*(new_execution(f"mt-{i}") for i in range(6)))
            claimed = await h.claim(now_ms=T0 + 1, limit=4)
            await h.finish(claimed[0], S.COMPLETED, now_ms=T0 + 2, output='"done"')
            await h.finish(claimed[1], S.FAILED, now_ms=T0 + 2)
            ids = [f"mt-{i}" for i in range(6)]
            before = await h.storage.get_executions(ids)
            for storage in (h.storage, await h.connect()):
                assert isinstance(await _maintenance(storage).maintain(min_interval_ms=0), bool)
                after = await storage.get_executions(ids)
                assert len(after) == len(before) == 6
                for record, expected in zip(after, before, strict=True):
                    assert_same_record(record, expected)
            assert sorted(r.execution_id for r in await h.claim(now_ms=T0 + 3)) == ids[4:]

        self.run_scenario(body)

    def test_a_pass_within_the_interval_of_the_last_one_does_nothing(self) -> None:
        """Right after a pass, another asking for an hour between passes does nothing."""

        async def body(h: Harness) -> None:
            await h.insert(new_execution("mt-interval"))
            storage = _maintenance(h.storage)
            await storage.maintain(min_interval_ms=0)
            assert await storage.maintain(min_interval_ms=HOUR_MS) is False

        self.run_scenario(body)

    def test_an_invalid_interval_raises(self) -> None:
        async def body(h: Harness) -> None:
            for bad in (-1, 1.5, True, None):
                try:
                    await _maintenance(h.storage).maintain(min_interval_ms=bad)  # type: ignore[arg-type]
                except (ValueError, TypeError):
                    continue
                raise AssertionError(f"maintain(min_interval_ms={bad!r}) did not raise")

        self.run_scenario(body)
