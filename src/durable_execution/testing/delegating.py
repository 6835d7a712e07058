"""A storage that passes every operation to another: the base of test doubles that fail,
pause or count some operations and leave the rest alone.

Every method of :class:`~durable_execution.storage.DurableStorage` is defined here (a wrapper
that forwarded through ``__getattr__`` would not pass the executor's ``isinstance`` check from
Python 3.12 on) and goes through :meth:`DelegatingStorage.forward`; override a method for one
operation, or ``forward`` for all of them::

    class Flaky(DelegatingStorage):
        async def forward(self, name, *args, **kwargs):
            if name == "record_outcomes" and random.random() < 0.1:
                raise DurableStorageError("injected")
            return await super().forward(name, *args, **kwargs)
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from durable_execution.errors import DurableExecutionErrorInfo
from durable_execution.storage.protocol import DurableStorage, WakeUpListener
from durable_execution.storage.records import (
    CloseResult,
    ExecutionOutcome,
    ExecutionRecord,
    NewExecution,
    ParentToAdvance,
)

__all__ = ["DelegatingStorage"]


class DelegatingStorage:
    """A :class:`~durable_execution.storage.DurableStorage` that forwards to ``inner``."""

    def __init__(self, inner: DurableStorage) -> None:
        self.inner = inner

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"

    async def forward(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call operation ``name`` of ``inner`` (every coroutine method comes through here)."""
        return await getattr(self.inner, name)(*args, **kwargs)

    async def initialize(self) -> None:
        await self.forward("initialize")

    async def close(self) -> None:
        await self.forward("close")

    def add_wakeup_listener(self, listener: WakeUpListener) -> Callable[[], None]:
        return self.inner.add_wakeup_listener(listener)

    async def insert_executions(self, executions: Sequence[NewExecution], now_ms: int) -> list[str]:
        ids: list[str] = await self.forward("insert_executions", executions, now_ms)
        return ids

    async def claim_ready_executions(
        self,
        *,
        executor_id: str,
        lease_ms_by_task: Mapping[str, int],
        now_ms: int,
        limit: int,
        lease_ms: int | None = None,
        max_suspects: int | None = None,
    ) -> list[ExecutionRecord]:
        records: list[ExecutionRecord] = await self.forward(
            "claim_ready_executions",
            executor_id=executor_id,
            lease_ms_by_task=lease_ms_by_task,
            now_ms=now_ms,
            limit=limit,
            lease_ms=lease_ms,
            max_suspects=max_suspects,
        )
        return records

    async def renew_leases(
        self,
        *,
        executor_id: str,
        leases: Sequence[tuple[str, int]],
        now_ms: int,
        lease_ms: int,
    ) -> list[bool]:
        renewed: list[bool] = await self.forward(
            "renew_leases",
            executor_id=executor_id,
            leases=leases,
            now_ms=now_ms,
            lease_ms=lease_ms,
        )
        return renewed

    async def record_outcomes(
        self, outcomes: Sequence[ExecutionOutcome], now_ms: int
    ) -> list[bool]:
        applied: list[bool] = await self.forward("record_outcomes", outcomes, now_ms)
        return applied

    async def claim_parents_to_advance(
        self, *, task_ids: Collection[str], now_ms: int, lease_ms: int, limit: int
    ) -> list[ParentToAdvance]:
        parents: list[ParentToAdvance] = await self.forward(
            "claim_parents_to_advance",
            task_ids=task_ids,
            now_ms=now_ms,
            lease_ms=lease_ms,
            limit=limit,
        )
        return parents

    async def close_finished_executions(self, *, now_ms: int, limit: int) -> CloseResult:
        result: CloseResult = await self.forward(
            "close_finished_executions", now_ms=now_ms, limit=limit
        )
        return result

    async def cancel_execution(
        self, execution_id: str, *, now_ms: int, error: DurableExecutionErrorInfo
    ) -> ExecutionRecord | None:
        record: ExecutionRecord | None = await self.forward(
            "cancel_execution", execution_id, now_ms=now_ms, error=error
        )
        return record

    async def claim_cancellations(self, *, executor_id: str, limit: int) -> list[str]:
        ids: list[str] = await self.forward(
            "claim_cancellations", executor_id=executor_id, limit=limit
        )
        return ids

    async def expire_leases(
        self, *, now_ms: int, limit: int, max_lease_expiries: int | None = None
    ) -> list[str]:
        ids: list[str] = await self.forward(
            "expire_leases", now_ms=now_ms, limit=limit, max_lease_expiries=max_lease_expiries
        )
        return ids

    async def release_executions(
        self, leases: Sequence[tuple[str, int]], *, now_ms: int
    ) -> list[bool]:
        released: list[bool] = await self.forward("release_executions", leases, now_ms=now_ms)
        return released

    async def get_executions(self, execution_ids: Sequence[str]) -> list[ExecutionRecord]:
        records: list[ExecutionRecord] = await self.forward("get_executions", execution_ids)
        return records

    async def find_finished(self, execution_ids: Collection[str]) -> set[str]:
        finished: set[str] = await self.forward("find_finished", execution_ids)
        return finished
