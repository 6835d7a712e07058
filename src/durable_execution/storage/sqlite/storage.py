"""SQLite storage on the standard library's ``sqlite3``: the embedded default.

- One connection per storage object for the writes, used only by one dedicated thread, so the
  event loop never waits for a write; reads have connections of their own (``readers.py``):
  they neither queue behind the writes nor wait for them.
- WAL journal (readers never block the writer), ``busy_timeout`` for waiting on other
  processes, and every write in ``BEGIN IMMEDIATE``: writers are serialized across all the
  processes that share the file, which is what makes claims disjoint.
- Inside a write transaction the rules of :mod:`durable_execution.storage.transitions` are
  applied to loaded records and written back, so SQLite and the in-memory backend share one
  implementation of the state changes.
- The schema is created or migrated on first use (see ``schema.py``); the connection and its
  thread are in ``connection.py``, the statements in ``statements.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import Literal, TypeVar

from durable_execution.checks import check_int
from durable_execution.errors import (
    DuplicateExecutionError,
    DuplicateUniqueIdError,
    DurableExecutionErrorInfo,
)
from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.caller_stamps import CallerStamps
from durable_execution.storage.int_range import (
    check_lease,
    check_leases,
    check_new_executions,
    check_outcomes,
)
from durable_execution.storage.listeners import WakeUpListeners
from durable_execution.storage.records import (
    ChildResult,
    CloseResult,
    CloseState,
    ExecutionOutcome,
    ExecutionRecord,
    NewExecution,
    ParentToAdvance,
    WorkKind,
)
from durable_execution.storage.rows import COLUMNS, error_from_json, record_from_row
from durable_execution.storage.sql_rules import (
    FINISHED_SQL,
    advanceable_sql,
)
from durable_execution.storage.sqlite import leases as lease_ops
from durable_execution.storage.sqlite.connection import ConnectionThread
from durable_execution.storage.sqlite.inline_writes import Writes
from durable_execution.storage.sqlite.inspection import SQLiteExecutionQueries
from durable_execution.storage.sqlite.maintenance import SQLiteMaintenance
from durable_execution.storage.sqlite.readers import INLINE_IDS, INLINE_RECORDS, Readers
from durable_execution.storage.sqlite.schema import (
    TABLE,
    record_to_params,
)
from durable_execution.storage.sqlite.sleeping import SQLiteSleepingExecutions
from durable_execution.storage.sqlite.statements import (
    CLOSE_IN_PARENT,
    COUNT_SUCCESSOR,
    FINISH,
    FINISH_BATCH,
    FINISH_BATCH_MIN,
    INSERT,
    SELECT,
    SUCCEED,
    UPDATE,
)
from durable_execution.storage.sqlite.trees import SQLiteTrees
from durable_execution.storage.sqlite.turns import PRIVATE_PATHS, LoopTurns
from durable_execution.storage.sqlite.watch import CommitWatch
from durable_execution.storage.sqlite.workers import SQLiteWorkerRegistry
from durable_execution.storage.transitions import (
    apply_close,
    apply_outcome,
    apply_outcome_close,
    cancel_record,
    cancelled_child_error,
    inserted_claim,
    is_advanceable,
    outcome_applies,
    record_work,
)

__all__ = ["SQLiteStorage"]

T = TypeVar("T")
_CHUNK = 500
SMALL_WRITE = 8
"""The most executions an insert, or outcomes a call, may hold to be written on the caller's
thread (``inline_writes.py``): a few tens of microseconds at most."""
MAX_BUSY_TIMEOUT_MS = 3_600_000
"""The longest ``busy_timeout_ms``: an hour (SQLite takes up to 2**31 - 1 ms)."""


def _chunks(items: Sequence[T], size: int = _CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _marks(count: int) -> str:
    return ", ".join("?" * count)


class SQLiteStorage(
    SQLiteSleepingExecutions,
    SQLiteWorkerRegistry,
    SQLiteExecutionQueries,
    SQLiteTrees,
    SQLiteMaintenance,
    CallerStamps,
):
    """A :class:`~durable_execution.storage.DurableStorage` in one SQLite file, with the
    :class:`~durable_execution.storage.abilities.WorkerRegistry`,
    :class:`~durable_execution.storage.abilities.SleepingExecutions`,
    :class:`~durable_execution.storage.abilities.ExecutionQueries`,
    :class:`~durable_execution.storage.abilities.TreeRetry`,
    :class:`~durable_execution.storage.abilities.ExecutionPurge`,
    :class:`~durable_execution.storage.abilities.CallerClock`,
    :class:`~durable_execution.storage.abilities.StampedWrites` and
    :class:`~durable_execution.storage.abilities.Maintenance` abilities (the last one gives
    the space of deleted rows back to the file system, see :mod:`.maintenance`).

    Several executors, in one or several processes on one host, may share the file (not over a
    network file system: SQLite's locks need a local disk); while an executor listens, its
    storage object watches the file and hears of other processes' commits within milliseconds
    (:mod:`.watch`). ``synchronous="NORMAL"`` (the
    default with WAL) survives process crashes; use ``"FULL"`` to survive power loss too.
    ``busy_timeout_ms`` (0 to an hour) is how long a write waits for another connection's
    write lock before it fails as a transient
    :class:`~durable_execution.errors.DurableStorageError`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout_ms: int = 10_000,
        synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = "NORMAL",
    ) -> None:
        check_int("busy_timeout_ms", busy_timeout_ms, minimum=0, maximum=MAX_BUSY_TIMEOUT_MS)
        if synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError("synchronous must be one of OFF, NORMAL, FULL, EXTRA")
        self.path = os.fspath(path)
        self._db = ConnectionThread(self.path, busy_timeout_ms, synchronous)
        turns = LoopTurns()
        self._readers = Readers(self.path, busy_timeout_ms, self._db, turns)
        self._writes = Writes(self.path, synchronous, self._db, turns)
        # Claims and closures take up to a limit: whether the last one was small (found few
        # rows) tells whether the next is likely to be, and may run on the caller's thread.
        self._small_claims = self._small_closes = True
        self._listeners = WakeUpListeners()
        self._listener_count = 0
        # Other processes' commits wake the listeners too (see watch.py).
        self._watch = CommitWatch(self.path, self._listeners.notify)

    def __repr__(self) -> str:
        return f"SQLiteStorage({self.path!r})"

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        return self._db.call(fn)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._readers.read(fn, inline=False)

    async def _write(
        self, body: Callable[[sqlite3.Connection, set[WorkKind]], T], *, small: bool = False
    ) -> T:
        """``body`` in a write transaction (on the caller's thread if ``small``, see
        ``inline_writes.py``), then the wake-ups of the work it made."""
        kinds: set[WorkKind] = set()

        def run(conn: sqlite3.Connection) -> T:
            kinds.clear()
            return body(conn, kinds)

        result = await self._writes.write(run, small=small)
        self._watch.committed()
        self._listeners.notify(kinds)
        return result

    # -- lifecycle ---------------------------------------------------------------------------

    async def initialize(self) -> None:
        await self._readers.open()

    async def close(self) -> None:
        await self._watch.stop()
        await self._readers.close()
        self._writes.close()
        await self._db.close()

    def add_wakeup_listener(self, listener: Callable[[WorkKind], None]) -> Callable[[], None]:
        """``listener`` hears of the work this object's writes make, and, within a few
        milliseconds, of commits by other processes (:mod:`.watch`)."""
        remove_listener = self._listeners.add(listener)
        self._listener_count += 1
        if self.path not in PRIVATE_PATHS:  # no other connection sees those
            self._watch.start()
        removed = False

        def remove() -> None:
            nonlocal removed
            if removed:
                return
            removed = True
            remove_listener()
            self._listener_count -= 1
            if self._listener_count == 0:
                self._watch.stop_soon()

        return remove

    # -- reading helpers (run inside the thread) ----------------------------------------------

    @staticmethod
    def _load(conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, ExecutionRecord]:
        records: dict[str, ExecutionRecord] = {}
        for chunk in _chunks(ids):
            sql = f"{SELECT} WHERE execution_id IN ({_marks(len(chunk))})"
            for row in conn.execute(sql, tuple(chunk)):
                record = record_from_row(row)
                records[record.execution_id] = record
        return records

    @staticmethod
    def _child_ids(conn: sqlite3.Connection, parent_ids: Sequence[str]) -> dict[str, list[str]]:
        children: dict[str, list[str]] = {}
        for chunk in _chunks(parent_ids):
            sql = (
                f"SELECT parent_execution_id, execution_id FROM {TABLE} "
                f"WHERE parent_execution_id IN ({_marks(len(chunk))}) AND is_finalize = 0 "
                "ORDER BY parent_execution_id, index_in_parent"
            )
            for parent_id, child_id in conn.execute(sql, tuple(chunk)):
                children.setdefault(parent_id, []).append(child_id)
        return children

    @staticmethod
    def _save(conn: sqlite3.Connection, records: Iterable[ExecutionRecord]) -> None:
        conn.executemany(UPDATE, [record_to_params(r) for r in records])

    @staticmethod
    def _insert_rows(
        conn: sqlite3.Connection,
        executions: Sequence[NewExecution],
        now_ms: int,
        kinds: set[WorkKind],
    ) -> None:
        """Insert new rows; only those inserted ready (not claimed by their creator) are work
        for the claimers: a wake-up for the others would send a claim that finds nothing."""
        rows = [
            (
                e.execution_id,
                e.task_id,
                e.input,
                _inserted_status(e),
                e.root_execution_id,
                e.parent_execution_id,
                e.index_in_parent,
                int(e.is_completion),
                e.priority,
                e.idempotency_key,
                now_ms,
                e.start_at_ms,
                e.claimed_by,
                0 if e.claimed_by is None else 1,
                *_inserted_times(e, now_ms),
                e.attributes,
                e.unique_id,
            )
            for e in executions
        ]
        try:
            conn.executemany(INSERT, rows)
        except sqlite3.IntegrityError as exc:
            if "unique_id" in str(exc):
                raise DuplicateUniqueIdError(
                    f"A sleeping task already has an unfinished execution with this unique id: "
                    f"{exc}"
                ) from exc
            raise DuplicateExecutionError(f"Execution id already exists: {exc}") from exc
        if any(e.claimed_by is None and e.unique_id is None for e in executions):
            kinds.add(WorkKind.READY)

    # -- operations --------------------------------------------------------------------------

    async def insert_executions(self, executions: Sequence[NewExecution], now_ms: int) -> list[str]:
        executions = list(executions)
        check_new_executions(executions, now_ms)

        def body(conn: sqlite3.Connection, kinds: set[WorkKind]) -> list[str]:
            keys = [e.idempotency_key for e in executions if e.idempotency_key is not None]
            existing: dict[str, str] = {}
            for chunk in _chunks(keys):
                sql = (
                    f"SELECT idempotency_key, execution_id FROM {TABLE} "
                    f"WHERE idempotency_key IN ({_marks(len(chunk))})"
                )
                existing.update(conn.execute(sql, tuple(chunk)).fetchall())
            ids: list[str] = []
            fresh: list[NewExecution] = []
            for new in executions:
                key = new.idempotency_key
                if key is not None and key in existing:
                    ids.append(existing[key])
                    continue
                if key is not None:
                    existing[key] = new.execution_id
                fresh.append(new)
                ids.append(new.execution_id)
            if fresh:
                self._insert_rows(conn, fresh, now_ms, kinds)
            return ids

        return await self._write(body, small=len(executions) <= SMALL_WRITE)

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
        if not lease_ms_by_task or limit <= 0:
            return []
        check_leases(now_ms, lease_ms_by_task)
        if lease_ms is not None:
            check_lease(now_ms, lease_ms)
        records = await self._write(
            lambda conn, kinds: lease_ops.claim_ready_executions(
                conn,
                executor_id=executor_id,
                lease_ms_by_task=lease_ms_by_task,
                now_ms=now_ms,
                limit=limit,
                lease_ms=lease_ms,
                max_suspects=max_suspects,
            ),
            small=self._small_claims,
        )
        self._small_claims = len(records) <= SMALL_WRITE
        return records

    async def renew_leases(
        self,
        *,
        executor_id: str,
        leases: Sequence[tuple[str, int]],
        now_ms: int,
        lease_ms: int,
    ) -> list[bool]:
        held = list(leases)
        if not held:
            return []
        return await self._write(
            lambda conn, kinds: lease_ops.renew_leases(
                conn, executor_id=executor_id, leases=held, now_ms=now_ms, lease_ms=lease_ms
            )
        )

    async def record_outcomes(
        self, outcomes: Sequence[ExecutionOutcome], now_ms: int
    ) -> list[bool]:
        outcomes = list(outcomes)
        check_outcomes(outcomes, now_ms)

        def body(conn: sqlite3.Connection, kinds: set[WorkKind]) -> list[bool]:
            # Plain finishes go first, all in one statement; the others follow one by one.
            # Only outcomes whose execution appears once are batched, so the order of the
            # outcomes of one execution (the first applies, the rest are stale) is kept.
            ids = [o.execution_id for o in outcomes]
            counts = Counter(ids) if len(set(ids)) < len(ids) else None
            batched = [
                o
                for o in outcomes
                if o.successor is None
                and o.status.is_finished
                and not o.children
                and (counts is None or counts[o.execution_id] == 1)
            ]
            in_call = json.dumps(sorted(set(ids)))
            applied = self._finish_batch(conn, batched, now_ms, kinds, in_call) if batched else {}
            return [
                applied[id(o)]
                if id(o) in applied
                else self._record_outcome(conn, o, now_ms, kinds, set(ids))
                for o in outcomes
            ]

        return await self._write(body, small=len(outcomes) <= SMALL_WRITE)

    @staticmethod
    def _finish_batch(
        conn: sqlite3.Connection,
        outcomes: Sequence[ExecutionOutcome],
        now_ms: int,
        kinds: set[WorkKind],
        in_call: str,
    ) -> dict[int, bool]:
        """Record finished outcomes without children in one statement, and update the parents
        of the children it closed (``in_call``: the ids of the call's outcomes, as JSON);
        keyed by ``id()``."""
        values = [
            [
                o.execution_id,
                o.expected_status.value,
                o.lease_token,
                o.status.value,
                o.output if o.status is S.COMPLETED else None,
                None if o.status is S.COMPLETED or o.error is None else o.error.to_json(),
                o.run_output,
            ]
            for o in outcomes
        ]
        if len(values) >= FINISH_BATCH_MIN:
            rows = conn.execute(FINISH_BATCH, (now_ms, json.dumps(values), in_call)).fetchall()
        else:
            rows = []
            for execution_id, expected, token, status, output, error, run_output in values:
                params = (
                    status,
                    output,
                    error,
                    now_ms,
                    run_output,
                    execution_id,
                    expected,
                    token,
                    in_call,
                )
                rows.extend(conn.execute(FINISH, params))
        done = {execution_id for execution_id, _, _, _ in rows}
        if any(close_state == CloseState.READY.value for _, close_state, _, _ in rows):
            kinds.add(WorkKind.CLOSE)
        closed_children = [
            (parent_id, status)
            for _, close_state, parent_id, status in rows
            if parent_id is not None and close_state == CloseState.CLOSED.value
        ]
        if closed_children:
            _close_in_parents(conn, closed_children, now_ms, kinds)
        return {id(o): o.execution_id in done for o in outcomes}

    def _record_outcome(
        self,
        conn: sqlite3.Connection,
        outcome: ExecutionOutcome,
        now_ms: int,
        kinds: set[WorkKind],
        in_call: set[str],
    ) -> bool:
        if outcome.successor is not None:
            return self._succeed(conn, outcome, outcome.successor, now_ms, kinds)
        record = self._load(conn, [outcome.execution_id]).get(outcome.execution_id)
        if record is None or not outcome_applies(record, outcome):
            return False
        apply_outcome(record, outcome, now_ms)
        changed = [record]
        parent_id = record.parent_execution_id
        if parent_id is not None and record.close_state is CloseState.READY:
            parent = self._load(conn, [parent_id]).get(parent_id)
            parent_in_call = parent_id in in_call
            if apply_outcome_close(record, parent, now_ms, parent_in_call=parent_in_call):
                changed.extend([] if parent is None else [parent])
        self._save(conn, changed)
        for changed_record in changed:
            _note_work(changed_record, kinds)
        if outcome.children:
            self._insert_rows(conn, outcome.children, now_ms, kinds)
        return True

    def _succeed(
        self,
        conn: sqlite3.Connection,
        outcome: ExecutionOutcome,
        successor: NewExecution,
        now_ms: int,
        kinds: set[WorkKind],
    ) -> bool:
        params = (
            outcome.output,
            now_ms,
            outcome.run_output,
            outcome.execution_id,
            outcome.expected_status.value,
            outcome.lease_token,
            successor.parent_execution_id,
        )
        if conn.execute(SUCCEED, params).fetchone() is None:
            return False
        conn.execute(COUNT_SUCCESSOR, (now_ms, successor.parent_execution_id))
        self._insert_rows(conn, [successor], now_ms, kinds)
        return True

    async def claim_parents_to_advance(
        self,
        *,
        task_ids: Collection[str],
        now_ms: int,
        lease_ms: int,
        limit: int,
    ) -> list[ParentToAdvance]:
        wanted = list(task_ids)
        if not wanted or limit <= 0:
            return []
        check_lease(now_ms, lease_ms)

        def body(conn: sqlite3.Connection, kinds: set[WorkKind]) -> list[ParentToAdvance]:
            sql = (
                f"UPDATE {TABLE} SET lease_token = lease_token + 1, expires_at = ?, "
                "updated_at = ? WHERE execution_id IN ("
                f"SELECT execution_id FROM {TABLE} WHERE {advanceable_sql()} "
                f"AND task_id IN ({_marks(len(wanted))}) "
                "AND (expires_at IS NULL OR expires_at <= ?) ORDER BY execution_id LIMIT ?) "
                f"RETURNING {', '.join(COLUMNS)}"
            )
            rows = conn.execute(sql, (now_ms + lease_ms, now_ms, *wanted, now_ms, limit))
            parents = sorted((record_from_row(r) for r in rows), key=lambda r: r.execution_id)
            children = self._children_results(conn, [p.execution_id for p in parents])
            return [ParentToAdvance(p, children.get(p.execution_id, [])) for p in parents]

        return await self._write(body)

    @staticmethod
    def _children_results(
        conn: sqlite3.Connection, parent_ids: Sequence[str]
    ) -> dict[str, list[ChildResult]]:
        results: dict[str, list[ChildResult]] = {}
        for chunk in _chunks(parent_ids):
            sql = (
                "SELECT parent_execution_id, execution_id, task_id, status, output, error "
                f"FROM {TABLE} WHERE parent_execution_id IN ({_marks(len(chunk))}) "
                "AND is_finalize = 0 ORDER BY parent_execution_id, index_in_parent"
            )
            for parent_id, child_id, task_id, status, output, error in conn.execute(sql, chunk):
                results.setdefault(parent_id, []).append(
                    ChildResult(child_id, task_id, S(status), output, error_from_json(error))
                )
        return results

    async def close_finished_executions(self, *, now_ms: int, limit: int) -> CloseResult:
        def body(conn: sqlite3.Connection, kinds: set[WorkKind]) -> CloseResult:
            sql = f"{SELECT} WHERE close_state = 'ready' ORDER BY execution_id LIMIT ?"
            batch = [record_from_row(row) for row in conn.execute(sql, (limit,))]
            result = CloseResult()
            if not batch:
                return result
            parent_ids = [r.parent_execution_id for r in batch if r.parent_execution_id]
            related = self._load(conn, sorted(set(parent_ids)))
            failed = [r for r in batch if r.status is not S.COMPLETED]
            child_ids = self._child_ids(conn, [r.execution_id for r in failed])
            for record in failed:
                if record.completion_execution_id is not None:
                    child_ids.setdefault(record.execution_id, []).append(
                        record.completion_execution_id
                    )
            related.update(self._load(conn, [c for ids in child_ids.values() for c in ids]))
            changed: dict[str, ExecutionRecord] = {}
            for record in batch:
                self._close_one(record, related, child_ids, now_ms, result, changed)
            for record in changed.values():
                _note_work(record, kinds)
            self._save(conn, changed.values())
            return result

        result = await self._write(body, small=self._small_closes)
        self._small_closes = result.closed <= SMALL_WRITE
        return result

    @staticmethod
    def _close_one(
        record: ExecutionRecord,
        related: dict[str, ExecutionRecord],
        child_ids: dict[str, list[str]],
        now_ms: int,
        result: CloseResult,
        changed: dict[str, ExecutionRecord],
    ) -> None:
        # A record closed earlier in this batch may have been changed since it was loaded.
        record = changed.get(record.execution_id, record)
        parent_id = record.parent_execution_id
        parent = None if parent_id is None else changed.get(parent_id, related.get(parent_id))
        if apply_close(record, parent, now_ms) and parent is not None:
            result.finished_execution_ids.append(parent.execution_id)
        changed[record.execution_id] = record
        if parent is not None:
            changed[parent.execution_id] = parent
        if record.status is not S.COMPLETED:
            error = cancelled_child_error(record)
            for child_id in child_ids.get(record.execution_id, []):
                child = changed.get(child_id, related.get(child_id))
                if child is not None and not child.is_finished:
                    cancel_record(child, now_ms, error)
                    changed[child_id] = child
                    result.finished_execution_ids.append(child_id)
        result.closed += 1

    async def cancel_execution(
        self, execution_id: str, *, now_ms: int, error: DurableExecutionErrorInfo
    ) -> ExecutionRecord | None:
        def body(conn: sqlite3.Connection, kinds: set[WorkKind]) -> ExecutionRecord | None:
            record = self._load(conn, [execution_id]).get(execution_id)
            if record is None:
                return None
            if not record.is_finished:
                cancel_record(record, now_ms, error)
                self._save(conn, [record])
                _note_work(record, kinds)
            record.child_execution_ids = tuple(
                self._child_ids(conn, [execution_id]).get(execution_id, [])
            )
            return record

        return await self._write(body)

    async def claim_cancellations(self, *, executor_id: str, limit: int) -> list[str]:
        def body(conn: sqlite3.Connection, kinds: set[WorkKind]) -> list[str]:
            sql = (
                f"UPDATE {TABLE} SET needs_promise_cancellation = 0 WHERE execution_id IN ("
                f"SELECT execution_id FROM {TABLE} WHERE needs_promise_cancellation = 1 "
                "AND executor_id = ? LIMIT ?) RETURNING execution_id"
            )
            return [row[0] for row in conn.execute(sql, (executor_id, limit)).fetchall()]

        return await self._write(body)

    async def expire_leases(
        self, *, now_ms: int, limit: int, max_lease_expiries: int | None = None
    ) -> list[str]:
        return await self._write(
            lambda conn, kinds: lease_ops.expire_leases(
                conn, kinds, now_ms=now_ms, limit=limit, max_lease_expiries=max_lease_expiries
            )
        )

    async def release_executions(
        self, leases: Sequence[tuple[str, int]], *, now_ms: int
    ) -> list[bool]:
        held = list(leases)
        return await self._write(
            lambda conn, kinds: lease_ops.release_executions(
                conn, kinds, leases=held, now_ms=now_ms
            )
        )

    async def get_executions(self, execution_ids: Sequence[str]) -> list[ExecutionRecord]:
        ids = list(execution_ids)
        if not ids:
            return []

        def read(conn: sqlite3.Connection) -> list[ExecutionRecord]:
            # One statement (a snapshot of its own) when no record has children, the common
            # case; else both reads again in one snapshot.
            records = self._load(conn, ids)
            if all(record.children_count == 0 for record in records.values()):
                return [records[i] for i in ids if i in records]
            conn.execute("BEGIN")
            try:
                records = self._load(conn, ids)
                children = self._child_ids(conn, list(records))
            finally:
                conn.execute("COMMIT")
            for record in records.values():
                record.child_execution_ids = tuple(children.get(record.execution_id, ()))
            return [records[i] for i in ids if i in records]

        return await self._readers.read(read, inline=len(ids) <= INLINE_RECORDS)

    async def find_finished(self, execution_ids: Collection[str]) -> set[str]:
        ids = list(execution_ids)
        if not ids:
            return set()

        def read(conn: sqlite3.Connection) -> set[str]:
            found: set[str] = set()
            for chunk in _chunks(ids):
                sql = (
                    f"SELECT execution_id FROM {TABLE} WHERE execution_id IN "
                    f"({_marks(len(chunk))}) AND status IN {FINISHED_SQL}"
                )
                found.update(row[0] for row in conn.execute(sql, tuple(chunk)))
            return found

        return await self._readers.read(read, inline=len(ids) <= INLINE_IDS)


_UNCLAIMED = (None, None, None)


def _inserted_status(new: NewExecution) -> str:
    if new.unique_id is not None:
        return S.SLEEPING.value
    return S.READY.value if new.claimed_by is None else S.RUNNING.value


def _inserted_times(new: NewExecution, now_ms: int) -> tuple[int | None, ...]:
    """``started_at``, ``expires_at`` and ``timeout_at`` of a new row (as
    ``transitions.new_record`` sets them)."""
    if new.unique_id is not None:
        deadline = now_ms + new.sleep_timeout_ms
        return None, deadline, deadline
    return _UNCLAIMED if new.claimed_by is None else _claim_columns(new, now_ms)


def _claim_columns(new: NewExecution, now_ms: int) -> tuple[int, int, int]:
    """``started_at``, ``expires_at`` and ``timeout_at`` of an execution inserted claimed."""
    lease_ms, timeout_ms = inserted_claim(new)
    return now_ms, now_ms + lease_ms, now_ms + timeout_ms


def _close_in_parents(
    conn: sqlite3.Connection,
    closed_children: Sequence[tuple[str, str]],
    now_ms: int,
    kinds: set[WorkKind],
) -> None:
    """Update the parents of children that outcomes closed (``(parent id, child status)``), as
    their closure would (see ``transitions.apply_outcome_close``)."""
    counts: dict[str, list[int]] = {}
    for parent_id, status in closed_children:
        count = counts.setdefault(parent_id, [0, 0])
        count[0] += 1
        count[1] += status != S.COMPLETED.value
    for parent_id, (closed, failed) in counts.items():
        row = conn.execute(CLOSE_IN_PARENT, (closed, failed, now_ms, parent_id)).fetchone()
        if row is not None and is_advanceable(S(row[0]), row[1], row[2]):
            kinds.add(WorkKind.ADVANCE)


def _note_work(record: ExecutionRecord, kinds: set[WorkKind]) -> None:
    """Which background work a changed record creates."""
    kinds.update(record_work(record))
