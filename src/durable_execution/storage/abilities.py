"""Optional storage abilities: what a storage may do beyond the core :class:`DurableStorage`.

The core protocol (:mod:`durable_execution.storage.protocol`) is what every storage must do to
run executions. A feature that needs more asks for an *ability*: a small
:func:`~typing.runtime_checkable` protocol of its own, defined here, with a docstring stating
what must hold. A storage has an ability when it has the ability's methods (no registration,
no base class); the feature checks for it at the call with :func:`require`, which raises
:class:`~durable_execution.errors.UnsupportedByStorageError` naming the storage and the
ability. There is never a silent fallback: a caller who asked for an atomic enqueue must not
get a non-atomic one.

Abilities so far:

- :class:`TransactionalEnqueue`: insert executions inside a transaction the caller opened
  (``enqueue_task(..., connection=...)``); :class:`PostgresStorage
  <durable_execution.storage.postgres.PostgresStorage>` has it.
- :class:`WorkerRegistry`: executors record themselves as workers (host, pid, tasks,
  heartbeat), so that ``executor.list_workers()`` can show them and work that no live worker
  can run is reported; every built-in storage has it.
- :class:`SleepingExecutions`: wake sleeping executions up by their unique id, and time out
  those whose deadline passed (``executor.sleeping_task``); every built-in storage has it.
- :class:`ExecutionQueries`: list executions by filters (keyset pagination, newest first),
  read a whole tree, count executions by task and status (``executor.list_executions()``,
  ``get_execution_tree()``, ``count_executions()``); every built-in storage has it.
- :class:`TreeRetry`: reopen a finished, unsuccessful tree in place
  (``executor.retry_execution``); every built-in storage has it.
- :class:`ExecutionPurge`: delete whole closed trees finished before a time, in bounded
  batches (``executor.purge_executions``, ``DurableExecutor(retention=...)``); every built-in
  storage has it.
- :class:`CallerClock`: the times stored are the callers' ``now_ms``, and writes follow
  :mod:`durable_execution.storage.transitions` to the field, so an executor knows the record
  its outcome left without reading it back (waits on executions it ran cost no read); the
  in-memory and SQLite storages have it, PostgreSQL with ``clock="executor"``.
- :class:`StampedWrites`: inserting executions and recording outcomes tell the time they
  stamped, so that a storage on its own clock (PostgreSQL's default, the server's) also lets
  an executor know the record a completed root left, without reading it back; every built-in
  storage has it (the in-memory and SQLite storages stamp the caller's ``now_ms``).

Adding an ability (listing, purging, waking sleeping executions, flow control, ...):

1. Here: a ``@runtime_checkable`` protocol named for what the storage can do, with as few
   methods as the feature needs, each a coroutine whose docstring states what must hold
   (atomicity, ordering, what is returned, which errors are raised); list it in ``__all__``
   and above.
2. In :mod:`durable_execution.testing`: a conformance part of its own (a
   :class:`~durable_execution.testing.base.ConformanceBase` subclass, with ``__test__ =
   False``, outside :class:`~durable_execution.testing.StorageConformanceSuite`), which a
   backend's test class mixes in only when the backend has the ability; see
   :class:`~durable_execution.testing.TransactionalEnqueueConformance`.
3. In each backend that has it: the methods, and the conformance part mixed into its tests.
4. At the call site (the executor): ``require(self.storage, TheAbility, "do what the user
   asked")``, then call the methods on what it returns (typed as the ability).
5. In the README's "Storage abilities": a line saying what the ability is for and who has it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any, Protocol, TypeVar, cast, runtime_checkable

from durable_execution.errors import DurableExecutionErrorInfo, UnsupportedByStorageError
from durable_execution.status import DurableTaskExecutionStatus
from durable_execution.storage.inspection import (
    CountKey,
    ExecutionCount,
    ExecutionFilter,
    ListPosition,
)
from durable_execution.storage.records import (
    ExecutionOutcome,
    ExecutionRecord,
    NewExecution,
    PurgeBatch,
)
from durable_execution.storage.workers import UnservedTask, WorkerInfo

__all__ = [
    "CallerClock",
    "ExecutionPurge",
    "ExecutionQueries",
    "Maintenance",
    "SleepingExecutions",
    "StampedWrites",
    "TransactionalEnqueue",
    "TreeRetry",
    "WorkerRegistry",
    "require",
]

AbilityT = TypeVar("AbilityT")


@runtime_checkable
class TransactionalEnqueue(Protocol):
    """Insert executions inside a transaction the caller opened and will end.

    This is what ``enqueue_task(..., connection=...)`` needs: the application writes its own
    rows and enqueues executions in one transaction, so both exist or neither does.
    """

    async def insert_executions_in_transaction(
        self, executions: Sequence[NewExecution], now_ms: int, *, connection: Any
    ) -> list[str]:
        """:meth:`DurableStorage.insert_executions <durable_execution.storage.DurableStorage.
        insert_executions>`, run inside ``connection``'s open transaction.

        ``connection`` is the caller's connection to the same store (for PostgreSQL, a psycopg
        ``AsyncConnection`` on the same database), with a transaction open. The storage neither
        commits nor rolls back: the executions become visible to other connections (and
        claimable, and the wake-up listeners are told) only when the caller commits; a
        rollback leaves nothing of them. Within the transaction everything else holds as for
        a plain insert: all or none, the ids returned in order (an idempotency key already
        stored, or repeated in the batch, returns the first execution's id), and a duplicate
        id raises :class:`~durable_execution.errors.DuplicateExecutionError` (the caller then
        rolls back).
        """
        ...


@runtime_checkable
class WorkerRegistry(Protocol):
    """A table of workers: the executors that run on this storage, and the tasks each runs.

    One row per worker, keyed by ``executor_id``. A worker is alive while its heartbeat is at
    most ``alive_within_ms`` old (see :mod:`durable_execution.storage.workers`); rows of dead
    workers stay until :meth:`forget_dead_workers` deletes them. Every method is atomic; none
    touches the executions.
    """

    async def register_worker(self, worker: WorkerInfo) -> None:
        """Store ``worker``, replacing the row of the same ``executor_id`` if there is one."""
        ...

    async def heartbeat_worker(
        self, executor_id: str, *, now_ms: int, task_ids: Collection[str] | None = None
    ) -> bool:
        """Set the worker's ``heartbeat_at_ms`` to ``now_ms``, and its ``task_ids`` (stored
        sorted) when given. Returns False, changing nothing, when it has no row (it was
        deregistered, or forgotten as dead): the caller then registers again."""
        ...

    async def deregister_worker(self, executor_id: str) -> None:
        """Delete the worker's row; nothing happens when there is none."""
        ...

    async def list_workers(self, *, now_ms: int, alive_within_ms: int) -> list[WorkerInfo]:
        """The live workers (``heartbeat_at_ms >= now_ms - alive_within_ms``), the earliest
        started first, then by ``executor_id``."""
        ...

    async def unserved_task_ids(
        self, task_ids: Collection[str], *, now_ms: int, alive_within_ms: int
    ) -> set[str]:
        """The ids among ``task_ids`` that no live worker registered. Reads the workers
        only (never the executions), so it stays cheap however many executions wait."""
        ...

    async def find_unserved_ready(
        self, *, now_ms: int, alive_within_ms: int, limit: int
    ) -> list[UnservedTask]:
        """``ready`` executions (due or delayed) whose task no live worker registered, one
        :class:`UnservedTask` per task, ordered by task id, at most ``limit`` of them.

        This reads every ready execution: call it from background work, now and then.
        """
        ...

    async def forget_dead_workers(self, *, now_ms: int, dead_for_ms: int) -> int:
        """Delete the workers whose heartbeat is older than ``now_ms - dead_for_ms``;
        returns how many."""
        ...


@runtime_checkable
class SleepingExecutions(Protocol):
    """Sleeping executions: inserted ``sleeping`` (a :class:`NewExecution` with a
    ``unique_id``, by :meth:`~durable_execution.storage.DurableStorage.insert_executions` or as
    a child in :meth:`~durable_execution.storage.DurableStorage.record_outcomes`), never
    claimed, finished by the first of a wake-up, their deadline and a cancellation.

    A storage with this ability also keeps, in those two core operations, the rule that a
    ``unique_id`` is unique per task among the sleeping executions: a duplicate (stored, or
    twice in one call) raises :class:`~durable_execution.errors.DuplicateUniqueIdError` and
    the call changes nothing. A finished execution's unique id may be used again.
    """

    async def wake_up_sleeping_execution(
        self,
        task_id: str,
        unique_id: str,
        *,
        now_ms: int,
        status: DurableTaskExecutionStatus,
        output: str | None = None,
        error: DurableExecutionErrorInfo | None = None,
    ) -> ExecutionRecord | None:
        """Finish the sleeping execution of ``task_id`` with ``unique_id``, atomically:
        ``completed`` with ``output``, or ``failed`` with ``error``
        (:func:`~durable_execution.storage.transitions.apply_wakeup`); the listeners are told
        (a child's closure, then its parent's advance, follow at once).

        Returns the execution after the call: the one just woken up; else, when none of that
        task with that id sleeps, the latest finished one with that id, unchanged (another
        wake-up, its timeout or a cancellation came first); ``None`` when no execution of the
        task has that id. A status other than ``completed`` or ``failed`` raises
        :class:`ValueError`, changing nothing. The deadline is enforced by
        :meth:`time_out_sleeping_executions`: until it ran, a late wake-up still wins.
        """
        ...

    async def time_out_sleeping_executions(self, *, now_ms: int, limit: int) -> list[str]:
        """Finish up to ``limit`` sleeping executions whose deadline passed
        (``expires_at_ms < now_ms``), earliest first, as ``timed_out``
        (:func:`~durable_execution.storage.transitions.apply_sleep_timeout`); returns their
        ids. Concurrent callers never time out the same execution twice."""
        ...


@runtime_checkable
class Maintenance(Protocol):
    """Housekeeping that keeps the store's cost flat as finished executions pile up.

    Executors call :meth:`maintain` every ``maintenance_interval_ms`` from a background loop,
    never on the path of a run or a wait; several executors may call it at once.
    """

    async def maintain(self, *, min_interval_ms: int) -> bool:
        """Do one bounded pass of housekeeping, unless another caller is doing it or did it
        less than ``min_interval_ms`` ago (the store's own record of it when it has one), or
        the store does not need it (PostgreSQL: its autovacuum is on). Returns whether this
        call did it. Never changes what any read returns."""


@runtime_checkable
class CallerClock(Protocol):
    """Records as the caller can compute them: no read needed to know what a write left.

    When :meth:`stores_caller_times` returns ``True``, the storage stores every time exactly
    as its callers pass it (``now_ms``, and the times the core protocol derives from it), and
    its writes leave each row exactly as the functions of
    :mod:`durable_execution.storage.transitions` would, field for field. So a caller holding an
    execution's record as its claim returned it (or as :func:`~durable_execution.storage.
    transitions.new_record` makes it for an execution inserted claimed, with the insert's
    ``now_ms``) knows, once :meth:`~durable_execution.storage.DurableStorage.record_outcomes`
    applied an outcome to it, the record as stored: the claimed record with
    :func:`~durable_execution.storage.transitions.apply_outcome` applied, with the write's
    ``now_ms``. The executor uses it for roots it ran that complete without children: a wait
    on them is answered without reading them back.
    """

    def stores_caller_times(self) -> bool:
        """Whether what the class docstring says holds for this storage object (PostgreSQL:
        only with ``clock="executor"``; by default it stamps the server's time)."""
        ...


@runtime_checkable
class StampedWrites(Protocol):
    """Inserts and outcomes that return the time they were stamped with, for a storage whose
    clock is its own (PostgreSQL's server clock, its default).

    A write stamped at ``stamp`` stores what the caller's write would store had its clock
    read ``stamp`` instead of ``now_ms``: the times derived from ``now_ms`` are derived from
    ``stamp``, and a time the caller computed itself (a ``start_at_ms``) is moved by
    ``stamp - now_ms``. Inserted executions are stored as
    :func:`~durable_execution.storage.transitions.new_record` makes them at ``stamp`` (with
    that move), outcomes as :func:`~durable_execution.storage.transitions.apply_outcome` applies
    them at ``stamp``, field for field. So a caller holding the record of an execution (as its
    claim returned it, or as ``new_record`` makes it from its insert's stamp) knows, once its
    outcome completed it and closed it, the record as stored. The executor uses it for the
    roots it runs that complete without children: a wait on them is answered without reading
    them back.
    """

    async def insert_executions_stamped(
        self, executions: Sequence[NewExecution], now_ms: int
    ) -> tuple[list[str], int | None]:
        """:meth:`~durable_execution.storage.DurableStorage.insert_executions` (the same
        writes, the same errors), returning the ids it returns and the time the executions it
        inserted were stamped with (all of them with the same); ``None`` may only come when it
        inserted none."""
        ...

    async def record_outcomes_stamped(
        self, outcomes: Sequence[ExecutionOutcome], now_ms: int
    ) -> list[int | None]:
        """:meth:`~durable_execution.storage.DurableStorage.record_outcomes`, the same writes
        in the same transactions, returning for each outcome the time (ms) stored as its
        ``updated_at`` (and ``finished_at`` when it finished) when it applied, ``None`` when
        it did not."""
        ...


@runtime_checkable
class TreeRetry(Protocol):
    """Reopen a finished, unsuccessful tree in place, so that what did not complete runs
    again (the rules: :mod:`durable_execution.storage.retry_rules`)."""

    async def retry_execution_tree(self, execution_id: str, *, now_ms: int) -> ExecutionRecord:
        """Reopen the tree of the root ``execution_id``, atomically: load the root and all
        its descendants, check :func:`~durable_execution.storage.retry_rules.retry_refusal`,
        apply :func:`~durable_execution.storage.retry_rules.reopen_tree` and store every
        record it changed, all in one transaction that excludes any other change to the
        root (a concurrent retry, cancellation or purge of the same tree either happens
        before, and this call sees it, or after). Returns the root after the call; the
        wake-up listeners are told (``ready``, ``advance``).

        Raises :class:`~durable_execution.errors.DurableExecutionNotFoundError` for an
        unknown id, :class:`~durable_execution.errors.ExecutionNotRetryableError` when
        refused, :class:`~durable_execution.errors.DuplicateUniqueIdError` when a sleeping
        execution to reopen has a unique id another sleeping execution took meanwhile;
        each changes nothing.
        """
        ...


@runtime_checkable
class ExecutionPurge(Protocol):
    """Delete whole closed trees, oldest first, in bounded batches.

    A tree qualifies when its root finished before ``finished_before_ms`` and the root and
    every descendant are finished, closed and without a pending stop request: a tree is
    deleted whole or not at all, and never while anything in it may still change. Deleting
    frees the idempotency keys (a later enqueue with the key creates a new execution).
    """

    async def purge_closed_trees(
        self,
        *,
        finished_before_ms: int,
        after_execution_id: str,
        scan_limit: int,
        max_trees: int,
        dry_run: bool = False,
    ) -> PurgeBatch:
        """One batch, in one short transaction: scan at most ``scan_limit`` executions in
        id order after ``after_execution_id`` (ids are time-ordered: the scan stops at
        :func:`~durable_execution.ids.execution_id_floor` of ``finished_before_ms``, past
        which no execution can have finished before it), and delete the qualifying trees
        among the roots it saw, at most ``max_trees``. Roots another transaction holds (a
        retry, a cancellation) are skipped. ``dry_run``: count what would be deleted, delete
        nothing.

        Concurrent callers never delete part of a tree, nor a tree that changed meanwhile.
        """
        ...


@runtime_checkable
class ExecutionQueries(Protocol):
    """Read executions by what they are rather than by id: for operators and dashboards.

    Every method only reads, sees one consistent state of the store (one statement or one
    read transaction), and returns records as
    :meth:`~durable_execution.storage.DurableStorage.get_executions` does (with their
    ``child_execution_ids``). The filters' rules are those of
    :func:`durable_execution.storage.inspection.matches`. A SQL storage walks its primary key
    (or an index in the same order) newest first, so a page costs about its size when what it
    selects is common among the newest executions, and up to the rows newer than its last
    when it is rare; it adds no index that every write would pay for.
    """

    async def list_executions(
        self, where: ExecutionFilter, *, limit: int, after: ListPosition | None = None
    ) -> list[ExecutionRecord]:
        """At most ``limit`` executions selected by ``where``, newest first: by
        ``execution_id`` descending (ids begin with their creation time); with ``after``,
        only those whose id is strictly smaller, so that pages never overlap nor skip an
        execution that existed when the first page was read (the key is unique, and never
        changes)."""
        ...

    async def get_execution_tree(self, root_execution_id: str) -> list[ExecutionRecord]:
        """The execution ``root_execution_id`` (any execution, not only a root) and every
        execution below it (children, their children, completion tasks), in one read or a
        few, never one per execution; the given execution first, the others in any order.
        Empty when no execution has that id."""
        ...

    async def count_executions(
        self, where: ExecutionFilter, *, by: tuple[CountKey, ...]
    ) -> list[ExecutionCount]:
        """How many executions ``where`` selects, one :class:`ExecutionCount` per distinct
        value of the ``by`` fields (``()``: one count of all, even 0), sorted by
        :func:`~durable_execution.storage.inspection.sort_counts`. Reads every selected
        execution (through an index): not for hot paths."""
        ...


def require(storage: object, ability: Callable[..., AbilityT], action: str) -> AbilityT:
    """``storage``, typed as ``ability``, if it has that ability; else raise.

    ``ability`` is one of the protocols of this module and ``action`` says, for the error
    message, what was asked (``"enqueue inside the caller's transaction"``). Raises
    :class:`~durable_execution.errors.UnsupportedByStorageError` naming the storage and the
    ability when the storage lacks one of its methods.

    (``ability`` is typed as a callable rather than ``type[...]`` because mypy does not accept
    a protocol class where ``type[...]`` is expected.)
    """
    if not isinstance(ability, type):
        raise TypeError(f"Expected an ability protocol, got {ability!r}")
    if not isinstance(storage, ability):
        raise UnsupportedByStorageError(storage, ability.__name__, action)
    return cast(AbilityT, storage)
