"""What an executor remembers of finished executions, so that waits and reads of them cost
nothing: their final records as a storage read returned them, and the ids it knows finished.

A record is *final* once nothing can change it any more: finished, closed, and with no stop
request pending. A finished execution still waiting for its closure changes when closed
(``is_closed``, ``updated_at``, and a failed parent's children are cancelled then, which a
child completing with a successor could race), and a cancelled run's stop request is cleared
once its owner picked it up; such records are not kept, a read finds them in the storage.

Records are kept as the storage returned them, or as the executor that completed them
computed them when the storage stores what its callers compute
(:class:`~durable_execution.storage.abilities.CallerClock`: the in-memory and SQLite storages,
PostgreSQL with ``clock="executor"``); a storage stamping times with its own clock
(PostgreSQL's, by default) is read: only a read knows what it stored. Both
memories are bounded (least recently used records go first, then the oldest ids): memory
stays flat however many executions an executor runs.

Only *completed* executions are remembered (their records, or their ids as finished): an
operator's retry (``executor.retry_execution``) takes every other finished status back to an
unfinished one, in whatever executor's memory it sits, and no message reaches the other
executors; a retry never changes a completed execution (see
:mod:`durable_execution.storage.retry_rules`), so what is remembered stays true. A wait on a
failed or cancelled execution checks the storage instead (one cheap status check).

A purge (``executor.purge_executions``, ``retention``) deletes completed records that another
executor may still remember: that executor keeps answering reads of such an execution, as it
was, until its record is evicted (the memory is bounded: at most ``max_records`` records and
``max_ids`` ids, least recently used first). The answer was true when the execution was
purged, and purges only reach executions finished long ago (the retention), which nobody
should still be reading; this is accepted, and documented in the README.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from durable_execution.status import DurableTaskExecutionStatus
from durable_execution.storage.records import CloseState, ExecutionRecord

__all__ = ["FinishedRecords", "is_final"]

_CLOSED = CloseState.CLOSED
_COMPLETED = DurableTaskExecutionStatus.COMPLETED
_RECORD_OVERHEAD = 1_000  # bytes of a record beyond its texts, roughly (objects, ints, ids)


def is_final(record: ExecutionRecord) -> bool:
    """Whether ``record`` can never change again, not even by a retry (see the module
    docstring): completed, closed, no stop request pending."""
    return (
        record.close_state is _CLOSED and not record.stop_requested and record.status is _COMPLETED
    )


class FinishedRecords:
    """Final records by execution id (at most ``max_records``, ``max_bytes`` of them in all),
    and ids known finished without a record (at most ``max_ids``), some of them marked to be
    read along with the next read (roots this executor finished: their handles are likely
    awaited next, one by one).

    Callers must not change the records they get: they are shared.
    """

    def __init__(
        self, max_records: int = 2_000, max_bytes: int = 8 * 2**20, max_ids: int = 10_000
    ) -> None:
        self._max_records = max_records
        self._max_bytes = max_bytes
        self._max_ids = max_ids
        self._records: OrderedDict[str, ExecutionRecord] = OrderedDict()
        self._sizes: dict[str, int] = {}  # apart: fewer objects for the garbage collector
        self._bytes = 0
        self._finished: OrderedDict[str, None] = OrderedDict()  # known finished, no record
        # Finished here and final at once, no record yet: worth reading ahead.
        self._to_read: OrderedDict[str, None] = OrderedDict()

    def clear(self) -> None:
        """Forget everything: later waits and reads go to the storage."""
        self._records.clear()
        self._sizes.clear()
        self._bytes = 0
        self._finished.clear()
        self._to_read.clear()

    @property
    def record_count(self) -> int:
        """How many records are kept."""
        return len(self._records)

    def get(self, execution_id: str) -> ExecutionRecord | None:
        """The final record of this execution, when kept."""
        record = self._records.get(execution_id)
        if record is not None:
            self._records.move_to_end(execution_id)
        return record

    def is_finished(self, execution_id: str) -> bool:
        """Whether this execution is known to be finished (only completed ones are known:
        a completed execution stays completed)."""
        return (
            execution_id in self._records
            or execution_id in self._finished
            or execution_id in self._to_read
        )

    def add(self, record: ExecutionRecord) -> None:
        """Remember what a read returned: the record when it is final, else whether it is
        completed."""
        self.add_all((record,))

    def add_all(self, records: Iterable[ExecutionRecord]) -> None:
        """:meth:`add` each record (in one call: this runs for every record read)."""
        kept, sizes, to_read, finished = self._records, self._sizes, self._to_read, self._finished
        max_bytes, total = self._max_bytes, self._bytes
        not_kept: list[str] = []
        for record in records:
            execution_id = record.execution_id
            completed = record.status is _COMPLETED
            if record.close_state is not _CLOSED or record.stop_requested or not completed:
                if completed:  # not final (is_final, written out: this is hot)
                    not_kept.append(execution_id)
                continue
            size = _RECORD_OVERHEAD + len(record.input)  # _size, written out
            for text in (record.output, record.run_output, record.attributes):
                if text is not None:
                    size += len(text)
            if record.error is not None:
                size += len(record.error.message) + len(record.error.traceback or "")
            if size > max_bytes:
                not_kept.append(execution_id)
                continue
            to_read.pop(execution_id, None)
            finished.pop(execution_id, None)
            total += size - sizes.get(execution_id, 0)
            kept[execution_id] = record
            kept.move_to_end(execution_id)
            sizes[execution_id] = size
        while len(kept) > self._max_records or total > max_bytes:
            total -= sizes.pop(kept.popitem(last=False)[0])
        self._bytes = total
        if not_kept:
            self.mark_finished(not_kept)

    def mark_finished(self, execution_ids: Iterable[str]) -> None:
        """These executions completed (their records are not known). Never call it with
        executions that finished otherwise: a retry would reopen them."""
        finished, records, to_read = self._finished, self._records, self._to_read
        for execution_id in execution_ids:
            if execution_id not in records and execution_id not in to_read:
                finished[execution_id] = None
        while len(finished) > self._max_ids:
            finished.popitem(last=False)

    def mark_to_read(self, execution_id: str) -> None:
        """This execution completed here, final at once: read it along with the next read
        (known finished until then)."""
        to_read = self._to_read
        to_read[execution_id] = None
        if len(to_read) > self._max_ids:
            to_read.popitem(last=False)

    def take_to_read(self, limit: int) -> list[str]:
        """Up to ``limit`` ids marked to be read, the oldest first; they are unmarked (and
        still known finished)."""
        to_read = self._to_read
        taken: list[str] = []
        while to_read and len(taken) < limit:
            taken.append(to_read.popitem(last=False)[0])
        self.mark_finished(taken)
        return taken
