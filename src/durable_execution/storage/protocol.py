"""The storage contract: a few semantic operations, each atomic.

An executor never reads a row and writes it back: every change is one of the operations below,
performed atomically by the storage, and safe to call concurrently from many executors, threads
and processes sharing one storage. Conditional writes are *fenced*: each claim hands out a fresh
``lease_token`` and each write made on behalf of that claim only applies while the token is
still the execution's current one, so an executor that lost its lease (paused, partitioned,
presumed dead) can never overwrite what the new owner wrote.

Implementations: :class:`~durable_execution.storage.memory.InMemoryStorage`,
:class:`~durable_execution.storage.sqlite.SQLiteStorage` and
:class:`~durable_execution.storage.postgres.PostgresStorage`. To write another one, pass
:mod:`durable_execution.testing`'s conformance suite.

What a storage may do beyond this protocol is an optional ability, a small protocol of its
own: see :mod:`durable_execution.storage.abilities`.

Leases are short and renewed: a claim's lease (``expires_at_ms``) is renewed by its owner's
heartbeats (:meth:`DurableStorage.renew_leases`) up to a backstop (``timeout_at_ms``, from the
task's timeout), so a dead owner's executions are taken back within one lease whatever their
timeout; :meth:`DurableStorage.expire_leases` counts each lease that expired, and fails an
execution that keeps killing its executors.

Room to grow: ``priority`` and ``start_at_ms`` (delayed start) order claims; the
``idempotency_key`` is unique among stored executions; a future "wait for an external event"
status would be one more conditional transition keyed by a unique wake-up key, and per-task
concurrency limits one more argument of :meth:`DurableStorage.claim_ready_executions`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Protocol, runtime_checkable

from durable_execution.errors import DurableExecutionErrorInfo
from durable_execution.storage.records import (
    CloseResult,
    ExecutionOutcome,
    ExecutionRecord,
    NewExecution,
    ParentToAdvance,
    WorkKind,
)

__all__ = ["DurableStorage", "WakeUpListener"]

WakeUpListener = Callable[[WorkKind], None]


@runtime_checkable
class DurableStorage(Protocol):
    """Where executions live. Every method is a coroutine and every write is atomic.

    Errors: raise :class:`~durable_execution.errors.DurableStorageError` (the driver's error
    chained as ``__cause__``) when an operation fails; a failed operation changed nothing.
    Integers (priorities, times, lease ends ``now_ms + lease``) are kept as signed 64-bit
    integers: an operation given one outside that range raises a non-transient
    ``DurableStorageError`` before writing anything (see
    :mod:`durable_execution.storage.int_range`; checked by the conformance suite).
    """

    async def initialize(self) -> None:
        """Make the storage ready (create or migrate the schema). Idempotent and concurrent-safe.

        Raise :class:`~durable_execution.errors.StorageSchemaError` when the database is
        corrupt, foreign, or written by a newer version.
        """
        ...

    async def close(self) -> None:
        """Release connections and threads. Idempotent; a later call may open them again."""
        ...

    def add_wakeup_listener(self, listener: WakeUpListener) -> Callable[[], None]:
        """Call ``listener(kind)`` whenever a committed change creates work of ``kind``.

        Best effort: it may be called from any thread, may coalesce or drop calls (executors
        also poll), and must never block. Returns a function that removes the listener.
        """
        ...

    async def insert_executions(self, executions: Sequence[NewExecution], now_ms: int) -> list[str]:
        """Insert root executions in status ``ready`` (or ``running`` when inserted claimed,
        see :class:`NewExecution`), all or none.

        Returns, for each, the execution id stored: its own, or that of the execution already
        stored under the same ``idempotency_key`` (then nothing is inserted for it, and its
        id is not checked: a batch sent again after an attempt that did commit returns the
        stored ids). Raises :class:`~durable_execution.errors.DuplicateExecutionError` when
        the id of an execution to insert is already stored or repeated in the batch.

        Inserting inside a transaction of the caller's is an optional ability:
        :class:`~durable_execution.storage.abilities.TransactionalEnqueue`.
        """
        ...

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
        """Claim up to ``limit`` ``ready`` executions with ``start_at_ms <= now_ms``.

        Only executions whose ``task_id`` is a key of ``lease_ms_by_task`` are claimed, highest
        ``priority`` first, then earliest ``start_at_ms``, then execution id. Each claimed one
        becomes ``running`` with ``executor_id``, a new ``lease_token`` (greater than any
        before) and ``started_at_ms = now_ms``. Its backstop is
        ``timeout_at_ms = now_ms + lease_ms_by_task[task]`` (the task's timeout plus leeway)
        and its lease ``expires_at_ms = now_ms + lease_ms``, never past the backstop
        (:func:`~durable_execution.storage.transitions.claim_times`); without ``lease_ms``
        the lease is the backstop. Its owner renews a shorter lease with
        :meth:`renew_leases`.

        ``max_suspects``: at most that many suspects (executions whose lease expired
        :data:`~durable_execution.storage.transitions.SUSPECT_LEASE_EXPIRIES` times or more)
        among the claimed ones, the first in claim order; ``None``: no limit. The others are
        claimed as if the suspects skipped were not there.

        Concurrent claimers never receive the same execution. Returned in claim order.
        """
        ...

    async def renew_leases(
        self,
        *,
        executor_id: str,
        leases: Sequence[tuple[str, int]],
        now_ms: int,
        lease_ms: int,
    ) -> list[bool]:
        """Renew the leases ``(execution id, lease token)`` that ``executor_id`` holds, all in
        one statement (the owner's heartbeat).

        A lease is renewed when its execution is still ``running`` with that token and owner
        and its lease has not expired (``expires_at_ms >= now_ms``; an expired lease is never
        brought back, even before :meth:`expire_leases` saw it): ``expires_at_ms`` becomes
        ``now_ms + lease_ms``, never past ``timeout_at_ms`` (for a claim without one, made
        by release 0.1.0, never past its current end). Nothing else changes, not even
        ``updated_at_ms``. Returns, for each lease, whether it was renewed; one refused
        means the claim is lost and its outcome will be refused too.
        """
        ...

    async def record_outcomes(
        self, outcomes: Sequence[ExecutionOutcome], now_ms: int
    ) -> list[bool]:
        """Apply each outcome if its execution still has its expected status and lease token.

        Each outcome is atomic on its own (with the children it inserts); returns, for each,
        whether it was applied. See :class:`ExecutionOutcome` for what each status writes.
        A finished execution is marked for closure, or closed in the same write: a root with
        nothing to close (:func:`~durable_execution.storage.records.closes_at_once`), or a
        child whose closure would only update its parent
        (:func:`~durable_execution.storage.transitions.closes_with_outcome`), the parent then
        updated as its closure would in the same write (one unfinished child fewer, one more
        failed child unless it completed; nothing when the parent is finished). Lease and
        owner are cleared.
        """
        ...

    async def claim_parents_to_advance(
        self,
        *,
        task_ids: Collection[str],
        now_ms: int,
        lease_ms: int,
        limit: int,
    ) -> list[ParentToAdvance]:
        """Claim parents in ``waiting_for_children`` that can move on.

        A parent can move on when none of its children is unfinished, or when one of them
        finished without completing. Only parents of ``task_ids`` whose previous advance claim
        (if any) expired are claimed; each gets a new ``lease_token`` and
        ``expires_at_ms = now_ms + lease_ms``. The parent then moves with
        :meth:`record_outcomes` (``expected_status=waiting_for_children``).
        """
        ...

    async def close_finished_executions(self, *, now_ms: int, limit: int) -> CloseResult:
        """Close up to ``limit`` finished executions waiting for closure, each exactly once.

        Closing an execution, atomically with marking it closed:

        - a child of an unfinished parent: decrements the parent's unfinished children, and
          counts a failed child when it did not complete;
        - the completion task of an unfinished parent: the parent becomes ``completed`` with
          its output, or ``on_run_and_children_complete_failed``;
        - an execution that did not complete: its unfinished children become ``cancelled``
          (running ones flagged for their owner to stop).
        """
        ...

    async def cancel_execution(
        self, execution_id: str, *, now_ms: int, error: DurableExecutionErrorInfo
    ) -> ExecutionRecord | None:
        """Cancel an unfinished execution; a finished one is left as it is.

        Returns the execution after the call, or ``None`` when no execution has that id.
        A running one keeps its ``executor_id`` and gets ``stop_requested``;
        its lease token is invalidated so its run can no longer record an outcome.
        """
        ...

    async def claim_cancellations(self, *, executor_id: str, limit: int) -> list[str]:
        """Ids of executions run by ``executor_id`` that were cancelled; clears their flag."""
        ...

    async def expire_leases(
        self, *, now_ms: int, limit: int, max_lease_expiries: int | None = None
    ) -> list[str]:
        """Take back up to ``limit`` ``running`` executions whose ``expires_at_ms < now_ms``.

        Their owner is presumed dead: lease and owner are cleared, the lease token changes,
        and ``lease_expiries`` grows by one. Each becomes ``ready`` again with
        ``start_at_ms = now_ms``, ``retry_attempts`` unchanged; or, when its leases have now
        expired ``max_lease_expiries`` times, ``failed`` with a non-retryable error of type
        ``crashed`` (:func:`~durable_execution.storage.transitions.crashed_error`), closed like
        any failed execution. ``None``: never failed. Returns their ids.
        """
        ...

    async def release_executions(
        self, leases: Sequence[tuple[str, int]], *, now_ms: int
    ) -> list[bool]:
        """Give back ``running`` executions (by id and lease token) as ``ready``, for shutdown.

        Like an expired lease, this uses up no retry attempt. Returns, for each, whether it
        was released.
        """
        ...

    async def get_executions(self, execution_ids: Sequence[str]) -> list[ExecutionRecord]:
        """The stored executions with these ids, in the given order; unknown ids are skipped.

        ``child_execution_ids`` is filled, in order, without the completion task.
        """
        ...

    async def find_finished(self, execution_ids: Collection[str]) -> set[str]:
        """The subset of ``execution_ids`` whose execution is finished (a cheap status check)."""
        ...
