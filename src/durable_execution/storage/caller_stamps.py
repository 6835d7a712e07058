"""The :class:`~durable_execution.storage.abilities.CallerClock` and
:class:`~durable_execution.storage.abilities.StampedWrites` abilities of a storage that stores
its callers' times as given (the in-memory and SQLite storages), as a mixin."""

from __future__ import annotations

from collections.abc import Sequence

from durable_execution.storage.records import ExecutionOutcome, NewExecution

__all__ = ["CallerStamps"]


class CallerStamps:
    """Every write is stamped with the caller's ``now_ms``: the stamps are known before the
    write, and returned as they are."""

    async def insert_executions(self, executions: Sequence[NewExecution], now_ms: int) -> list[str]:
        raise NotImplementedError  # pragma: no cover - the storage's

    async def record_outcomes(
        self, outcomes: Sequence[ExecutionOutcome], now_ms: int
    ) -> list[bool]:
        raise NotImplementedError  # pragma: no cover - the storage's

    def stores_caller_times(self) -> bool:
        """See :class:`~durable_execution.storage.abilities.CallerClock`."""
        return True

    async def insert_executions_stamped(
        self, executions: Sequence[NewExecution], now_ms: int
    ) -> tuple[list[str], int | None]:
        """See :class:`~durable_execution.storage.abilities.StampedWrites`: ``now_ms``."""
        return await self.insert_executions(executions, now_ms), now_ms

    async def record_outcomes_stamped(
        self, outcomes: Sequence[ExecutionOutcome], now_ms: int
    ) -> list[int | None]:
        """See :class:`~durable_execution.storage.abilities.StampedWrites`: ``now_ms`` for
        each outcome that applied."""
        return [now_ms if ok else None for ok in await self.record_outcomes(outcomes, now_ms)]
