"""Inserting new executions, retrying transient storage failures without duplicating any.

A failure the storage marks transient (a dropped connection, a database restarting, a file
locked past the busy timeout) is retried a few times with a growing pause. Execution ids are
made here, by the client, so a retry cannot create a second execution: when an attempt failed
after its commit went through, the retry meets the rows it already wrote (a duplicate id),
finds that they are exactly the executions it sent, and counts them as inserted.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from typing import cast

from durable_execution.errors import DuplicateExecutionError, DurableStorageError
from durable_execution.executor.options import LoggerLike
from durable_execution.storage.abilities import StampedWrites
from durable_execution.storage.protocol import DurableStorage
from durable_execution.storage.records import ExecutionRecord, NewExecution

__all__ = ["insert_retrying"]

# Pauses before each retry: about 3 s in all, enough for a connection to be replaced or a
# database to come back from a quick restart, short enough for a caller waiting on an enqueue.
RETRY_DELAYS_S: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)


async def insert_retrying(
    storage: DurableStorage,
    executions: Sequence[NewExecution],
    now_ms: int,
    logger: LoggerLike,
    *,
    maybe_stored: bool = False,
) -> tuple[list[str], int | None]:
    """:meth:`DurableStorage.insert_executions`, retried while it fails transiently.

    Returns what the storage returns: for each execution, its own id or that of the execution
    found under its idempotency key; and the time the storage stamped the executions it
    inserted with, when a storage of
    :class:`~durable_execution.storage.abilities.StampedWrites` inserted them all in one
    attempt (else ``None``). Non-transient errors are raised at once; a transient one
    is raised once the retries are used up (the executions may then exist or not, as after
    any failed commit; they are never stored twice). ``maybe_stored``: an earlier insert of
    these executions failed and may have committed (the first attempt then checks for them,
    as a retry does).
    """
    for attempt, delay in enumerate((*RETRY_DELAYS_S, None)):
        try:
            if maybe_stored:
                return await _insert_again(storage, executions, now_ms), None
            if _stamps_inserts(type(storage)):
                return await cast(StampedWrites, storage).insert_executions_stamped(
                    executions, now_ms
                )
            return await storage.insert_executions(executions, now_ms), None
        except DurableStorageError as exc:
            if not exc.is_transient or delay is None:
                raise
            logger.warning(
                "inserting %d execution(s) failed (attempt %d), retrying in %.2f s: %s",
                len(executions),
                attempt + 1,
                delay,
                exc,
            )
        maybe_stored = True  # the failure may have come after the commit
        await asyncio.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


@functools.cache
def _stamps_inserts(storage_class: type) -> bool:
    """Whether storages of this class have the ``StampedWrites`` ability (a protocol check
    costs ~6 µs, once per class here rather than once per insert)."""
    return issubclass(storage_class, StampedWrites)


async def _insert_again(
    storage: DurableStorage, executions: Sequence[NewExecution], now_ms: int
) -> list[str]:
    """Insert after an attempt that may have committed: the executions found stored under
    their own id count as inserted (after checking they are the ones sent), the rest are
    inserted now."""
    try:
        return await storage.insert_executions(executions, now_ms)
    except DuplicateExecutionError:
        stored = {
            r.execution_id: r
            for r in await storage.get_executions([e.execution_id for e in executions])
        }
        if not stored or any(
            not _is_stored_as(stored[e.execution_id], e)
            for e in executions
            if e.execution_id in stored
        ):
            raise  # not (only) ours: a real duplicate
    rest = [e for e in executions if e.execution_id not in stored]
    inserted = iter(await storage.insert_executions(rest, now_ms) if rest else [])
    return [e.execution_id if e.execution_id in stored else next(inserted) for e in executions]


def _is_stored_as(record: ExecutionRecord, new: NewExecution) -> bool:
    """Whether ``record`` is the stored form of ``new`` (and not another execution that
    happens to have its id)."""
    return (
        record.task_id == new.task_id
        and record.input == new.input
        and record.parent_execution_id == new.parent_execution_id
        and record.root_execution_id == new.root_execution_id
        and record.idempotency_key == new.idempotency_key
    )
