"""Group commit of enqueues: concurrent enqueues share one insert, hence one commit.

An enqueue that finds no insert of roots in flight makes its own at once, alone: a lone caller
waits for nothing but its own commit. Enqueues that arrive while one is in flight queue up,
and join the next batch, which starts as soon as the insert in flight ends: one
``insert_executions`` (one transaction) for all of them, run by a task of its own so that no
caller's cancellation cancels the others' insert. Each caller returns only once the batch that
holds its executions committed: durable when it returns, as before.

Single enqueues (``enqueue_task``, see :mod:`~durable_execution.executor.enqueue_call`) do not
wait at the call: they :meth:`~GroupCommit.submit` their part. With no insert in flight, the
first of them schedules a batch for the loop's next turn, which the parts submitted until then
join (a gather of thousands of enqueues is one insert); if its caller awaits it while it is
still alone, the caller inserts it itself, at once, as above (:meth:`~GroupCommit.take_alone`).

A batch is all or nothing, like each of its parts. When it fails with an error that is not
transient (a duplicate id, a value the database refuses), its parts are inserted again one by
one, so that only the caller at fault fails, with the error it would have had alone. A
transient failure is retried for the whole batch
(:mod:`~durable_execution.executor.insert_retry`); when the retries are used up, every caller
of the batch gets the error.

Cancelling a waiting caller: if its batch has not started, its executions are left out (never
inserted); if it has, they are inserted (and run) like the others, and the caller only stops
waiting. This is what a cancel of an enqueue in flight always meant: its executions may or may
not be stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Protocol

from durable_execution.errors import DurableStorageError
from durable_execution.storage.records import NewExecution

__all__ = ["GroupCommit", "InsertBatch", "Part"]


class InsertBatch(Protocol):
    """Insert ``executions`` (all or nothing) and return the id stored for each (see
    :meth:`DurableStorage.insert_executions`); ``maybe_stored``: an earlier failed insert of
    them may have committed."""

    def __call__(
        self, executions: list[NewExecution], now_ms: int, *, maybe_stored: bool
    ) -> Awaitable[list[str]]: ...


class Part:
    """One caller's executions, waiting for a batch; told the ids stored for them, or the
    error of their insert. The caller may have stopped waiting meanwhile (cancelled): it is
    then ``done`` already, and left out of the batches not yet started."""

    __slots__ = ("executions", "now_ms")

    def __init__(self, executions: list[NewExecution], now_ms: int) -> None:
        self.executions = executions
        self.now_ms = now_ms

    def done(self) -> bool:
        raise NotImplementedError

    def succeed(self, ids: list[str]) -> None:
        raise NotImplementedError

    def fail(self, exc: BaseException) -> None:
        raise NotImplementedError

    def cancel(self) -> None:
        raise NotImplementedError


class _FuturePart(Part):
    """A part whose caller awaits a future of the ids (:meth:`GroupCommit.insert`)."""

    __slots__ = ("future",)

    def __init__(self, executions: list[NewExecution], now_ms: int) -> None:
        super().__init__(executions, now_ms)
        self.future: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()

    def done(self) -> bool:
        return self.future.done()

    def succeed(self, ids: list[str]) -> None:
        if not self.future.done():
            self.future.set_result(ids)

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)

    def cancel(self) -> None:
        self.future.cancel()


class GroupCommit:
    """Shares inserts between concurrent callers of :meth:`insert` (see the module
    docstring); ``insert_batch`` makes each insert."""

    def __init__(self, insert_batch: InsertBatch) -> None:
        self._insert_batch = insert_batch
        self._in_flight = False
        self._waiting: list[Part] = []
        self._batches: asyncio.Task[None] | None = None  # runs the batches while callers wait
        self._scheduled = False  # the waiting parts' batch starts at the next _next_turn
        self._start: asyncio.Handle | None = None  # that _next_turn, pending

    async def insert(self, executions: list[NewExecution], now_ms: int) -> list[str]:
        """Insert ``executions`` (all or nothing), alone or with others' concurrent ones;
        returns the id stored for each, once committed."""
        if self._in_flight:
            part = _FuturePart(executions, now_ms)
            self._waiting.append(part)
            return await part.future
        self._in_flight = True
        try:  # nothing in flight: insert at once, alone (a cancel cancels only this insert)
            return await self._insert_batch(executions, now_ms, maybe_stored=False)
        finally:
            self._in_flight = False
            if self._waiting:
                self._start_batches()

    def submit(self, part: Part) -> bool:
        """Queue ``part`` for the next batch, without waiting: it is told its ids, or its
        error, once that batch is over. When no insert is in flight, the batch starts at the
        loop's next turn, so that the parts submitted until then (a gather of enqueues makes
        them all at once) share its insert; then ``part`` leads it, and this returns True: its
        caller, if it awaits it before, may insert it itself (:meth:`take_alone`)."""
        self._waiting.append(part)
        if self._in_flight:
            return False
        self._in_flight = self._scheduled = True
        if self._start is None:  # one a turn: lone callers take their parts back before it
            self._start = asyncio.get_running_loop().call_soon(self._next_turn)
        return True

    def take_alone(self, part: Part) -> bool:
        """Whether the caller of ``part``, which leads a batch not started yet, may insert it
        at once, itself, with :meth:`insert_taken`: when no other part joined it. A lone
        caller that awaits its enqueue so waits for nothing but its own commit, without a
        hop through another task."""
        if not self._scheduled or len(self._waiting) != 1 or self._waiting[0] is not part:
            return False
        self._scheduled = False  # the start to come finds nothing to do
        self._waiting = []
        return True

    async def insert_taken(self, part: Part) -> None:
        """Insert ``part``, taken by :meth:`take_alone`, alone (a cancel cancels only this
        insert, which may have committed or not, and gives the part up)."""
        try:
            await self._commit_alone(part, maybe_stored=False)
        except BaseException:
            part.cancel()
            raise
        finally:
            self._in_flight = False
            if self._waiting:
                self._start_batches()

    async def drain(self) -> None:
        """Wait until the parts submitted so far have their ids or their error: a batch
        scheduled is started now, and the batches in flight are awaited. (A lone caller's own
        insert runs in its caller's task, which awaits it.)"""
        self._start_if_scheduled()
        while self._batches is not None:
            await asyncio.shield(self._batches)

    def _next_turn(self) -> None:
        self._start = None
        self._start_if_scheduled()

    def _start_if_scheduled(self) -> None:
        if self._scheduled:
            self._scheduled = False
            self._start_batches()

    def _start_batches(self) -> None:
        self._in_flight = True
        self._batches = asyncio.get_running_loop().create_task(self._run_batches())

    async def _run_batches(self) -> None:
        parts: list[Part] = []
        try:
            while self._waiting:
                parts, self._waiting = self._waiting, []
                parts = [part for part in parts if not part.done()]
                if parts:
                    await self._commit(parts)
        except BaseException:  # cancelled with its loop: so are the callers still waiting
            for part in (*parts, *self._waiting):
                part.cancel()
            self._waiting = []
            raise
        finally:
            self._in_flight = False
            self._batches = None

    async def _commit(self, parts: list[Part]) -> None:
        """Insert ``parts`` as one batch, and give each its ids or its error."""
        if len(parts) == 1:
            await self._commit_alone(parts[0], maybe_stored=False)
            return
        executions = [new for part in parts for new in part.executions]
        # The latest clock reading of the batch (each part's start times stay its own).
        now_ms = max(part.now_ms for part in parts)
        try:
            ids = await self._insert_batch(executions, now_ms, maybe_stored=False)
        except Exception as exc:
            if isinstance(exc, DurableStorageError) and exc.is_transient:
                for part in parts:  # retried already, for all of them
                    part.fail(exc)
                return
        else:
            start = 0
            for part in parts:
                part.succeed(ids[start : start + len(part.executions)])
                start += len(part.executions)
            return
        # Failed because of one part, or some: only those may fail, each with its own error.
        for part in parts:
            if not part.done():
                await self._commit_alone(part, maybe_stored=True)

    async def _commit_alone(self, part: Part, *, maybe_stored: bool) -> None:
        try:
            ids = await self._insert_batch(part.executions, part.now_ms, maybe_stored=maybe_stored)
        except Exception as exc:
            part.fail(exc)
        else:
            part.succeed(ids)
