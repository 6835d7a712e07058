"""Reading executions: from memory when final, else in one storage read shared by every caller
of the moment.

A read (not a wait's) asked for when no other is in flight or waiting is made at once by its
caller: with a storage that answers small reads without suspending (SQLite), it costs no turn
of the event loop. Reads asked for while a read is in flight, and waits' reads, go to the
storage together: one ``get_executions`` call per wake-up, whether they come from a
``gather`` of waits, from many handles, or from ``get_execution`` calls. Each read still sees
the storage as it is after the call began (a read already in flight is never joined), so a
status read is as fresh as before. A read made for a wait also brings along the roots this
executor finished lately, which nobody awaited yet: an application awaiting its handles one
by one then finds the next ones in memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

from durable_execution.executor.finished import FinishedRecords
from durable_execution.storage.protocol import DurableStorage
from durable_execution.storage.records import ExecutionRecord

__all__ = ["ReadCaller", "RecordReads"]

_READ_AHEAD = 500  # records brought along with one read, at most


_Found = dict[str, ExecutionRecord]


class ReadCaller(Protocol):
    """Who waits for a read: an :class:`asyncio.Future`, or anything resolved the same way
    (a handle's wait, see :mod:`durable_execution.executor.execution_wait`)."""

    def done(self) -> bool: ...

    def set_result(self, result: Any, /) -> None: ...

    def set_exception(self, exception: BaseException, /) -> None: ...

    def cancel(self) -> bool: ...


class _Batch:
    """The ids of the next storage read, and the future of each caller waiting for it."""

    __slots__ = ("callers", "ids", "read_ahead")

    def __init__(self) -> None:
        self.ids: dict[str, None] = {}
        self.callers: list[ReadCaller] = []
        self.read_ahead = False

    def resolve(self, found: _Found | BaseException) -> None:
        for caller in self.callers:
            if caller.done():  # cancelled
                continue
            if isinstance(found, asyncio.CancelledError):
                caller.cancel()
            elif isinstance(found, BaseException):
                caller.set_exception(found)
            else:
                caller.set_result(found)


class RecordReads:
    """Reads of executions by id, coalesced, with final records answered by ``finished``.

    A failed storage read fails each of its callers with the storage's error.
    """

    def __init__(self, storage: DurableStorage, finished: FinishedRecords) -> None:
        self._storage = storage
        self._finished = finished
        self._next: _Batch | None = None
        self._reader: asyncio.Task[None] | None = None
        self._direct = False  # a caller's own read is in flight

    async def read_one(
        self, execution_id: str, *, read_ahead: bool = False
    ) -> ExecutionRecord | None:
        """The execution with this id, ``None`` when there is none."""
        record = self._finished.get(execution_id)
        if record is not None:
            return record
        return (await self._read_stored((execution_id,), read_ahead)).get(execution_id)

    async def read(
        self, execution_ids: Sequence[str], *, read_ahead: bool = False
    ) -> dict[str, ExecutionRecord]:
        """The executions with these ids, by id; unknown ids are left out.

        ``read_ahead``: the read is made for a wait; bring along the roots finished here.
        """
        found: dict[str, ExecutionRecord] = {}
        missing: list[str] = []
        for execution_id in execution_ids:
            record = self._finished.get(execution_id)
            if record is None:
                missing.append(execution_id)
            else:
                found[execution_id] = record
        if missing:
            stored = await self._read_stored(missing, read_ahead)
            for execution_id in missing:
                record = stored.get(execution_id)
                if record is not None:
                    found[execution_id] = record
        return found

    async def _read_stored(self, execution_ids: Sequence[str], read_ahead: bool) -> _Found:
        """What a storage read finds of these executions: the caller's own read, made at
        once, when it is no wait's (a wait's read is shared with the other waits woken in
        the same turn) and no other read is in flight or waiting to be made (a storage that
        answers without suspending, as SQLite does for small reads, then costs no turn of
        the event loop); else the next shared read."""
        if read_ahead or self._direct or self._next is not None or not self._idle():
            caller: asyncio.Future[_Found] = asyncio.get_running_loop().create_future()
            self.read_into(execution_ids, caller, read_ahead=read_ahead)
            return await caller
        ids = list(execution_ids)
        self._direct = True  # reads asked for meanwhile wait for the next shared read
        try:
            records = await self._storage.get_executions(ids)
        finally:
            self._direct = False
            self._start_queued()
        self._finished.add_all(records)
        return {record.execution_id: record for record in records}

    def _idle(self) -> bool:
        return self._reader is None or self._reader.done()

    def _start_queued(self) -> None:
        """Start the shared read of what was asked for while a caller's own read was in
        flight."""
        if self._next is not None and self._idle():
            self._reader = asyncio.create_task(self._read_batches())

    def read_into(
        self, execution_ids: Sequence[str], caller: ReadCaller, *, read_ahead: bool
    ) -> None:
        """Resolve ``caller`` with what the next storage read finds of these executions (by
        id), or with its error; a cancelled ``caller`` is left alone.

        ``read_ahead``: the read is made for a wait; bring along the roots finished here.
        """
        batch = self._next
        if batch is None:
            batch = self._next = _Batch()
            if not self._direct and self._idle():
                # Started in the next turn of the loop: every read asked for in this turn
                # joins the batch first.
                self._reader = asyncio.create_task(self._read_batches())
        batch.ids.update(dict.fromkeys(execution_ids))
        batch.read_ahead = batch.read_ahead or read_ahead
        batch.callers.append(caller)

    async def _read_batches(self) -> None:
        try:
            while self._next is not None:
                batch, self._next = self._next, None
                await self._read_batch(batch)
        finally:  # cancelled (the loop closes): nobody may wait forever
            if self._next is not None:
                self._next.resolve(asyncio.CancelledError())
                self._next = None

    async def _read_batch(self, batch: _Batch) -> None:
        ids = list(batch.ids)
        if batch.read_ahead:
            ids.extend(i for i in self._finished.take_to_read(_READ_AHEAD) if i not in batch.ids)
        try:
            records = await self._storage.get_executions(ids)
        except asyncio.CancelledError as exc:
            batch.resolve(exc)
            raise
        except Exception as exc:  # each caller raises it, as if it had read alone
            batch.resolve(exc)
            return
        self._finished.add_all(records)
        batch.resolve({record.execution_id: record for record in records})
