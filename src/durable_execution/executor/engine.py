"""The background work of an executor: five small claim-then-act loops.

1. run: claim ready executions of the registered tasks, run each, record the outcome;
2. advance: move parents whose children finished (completion task, completed, failed);
3. close: close finished executions (update parents, cancel orphaned children);
4. cancel: stop the runs of executions that were cancelled elsewhere;
5. expire: make ready again the running executions whose owner went silent (or fail, as
   crashed, those whose leases expired ``max_lease_expiries`` times).

Each loop sleeps its interval only when its last batch was not full; storage wake-ups and
this executor's own writes wake the loop that has new work at once. Beside them, the
heartbeat (``heartbeat.py``) renews the leases of the runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from durable_execution.checks import MAX_DURATION_MS, check_int
from durable_execution.executor.finished import FinishedRecords
from durable_execution.executor.heartbeat import Heartbeat
from durable_execution.executor.iterations import loop_advance, next_iteration
from durable_execution.executor.loop import BackgroundLoop
from durable_execution.executor.options import ExecutorOptions, LoggerLike
from durable_execution.executor.outcomes import DataLimits, advance_outcome, next_step
from durable_execution.executor.reads import RecordReads
from durable_execution.executor.runner import AttemptRunner, RunningExecution, StopReason
from durable_execution.executor.waiters import FinishWaiters
from durable_execution.executor.watchdog import LoopWatchdog
from durable_execution.executor.writer import OutcomeWriter
from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.abilities import CallerClock, SleepingExecutions
from durable_execution.storage.protocol import DurableStorage
from durable_execution.storage.records import (
    CloseResult,
    ExecutionOutcome,
    ExecutionRecord,
    NewExecution,
    WorkKind,
    closes_at_once,
)
from durable_execution.storage.transitions import (
    apply_outcome,
    claim_times,
    is_suspect,
    new_record,
    outcome_work,
)
from durable_execution.task import DurableTask, TaskKind

__all__ = ["ExecutionEngine", "Reservation", "claim_backstop_ms"]

_ADVANCE_LEASE_EXTRA_MS = 5_000
_COMPLETED = S.COMPLETED
_MAX_WAITER_POLL_S = 0.1
_STOP_GRACE_S = 5.0
_MAX_SETTLE_ROUNDS = 100  # each closes and advances a batch; a tree is rarely deeper
_INTERRUPT_GRACE_S = 1.0  # for interrupted sync tasks to end at shutdown (interrupt_sync_tasks)


def claim_backstop_ms(task: DurableTask[Any, Any], leeway_ms: int) -> int:
    """The backstop of a claim of ``task``: its timeout plus the leeway, checked to be within
    the bounds of the options (so that ``now`` plus the backstop fits any storage)."""
    return check_int(
        f"backstop of task {task.id} (timeout_ms + expire_leeway_ms)",
        task.timeout_ms + leeway_ms,
        minimum=1,
        maximum=2 * MAX_DURATION_MS,
    )


class Reservation:
    """New executions that their creator will run itself (direct dispatch), with the slots
    promised to them until their insert is known to have committed or not.

    Made by :meth:`ExecutionEngine.reserve`; ``executions`` are the ones to insert (those this
    executor will run marked ``claimed_by`` it). Settle it once: :meth:`start` after the
    insert committed, or :meth:`release` when it did not.
    """

    __slots__ = ("_engine", "_reserved", "_threads", "executions")

    def __init__(
        self,
        engine: ExecutionEngine,
        executions: list[NewExecution],
        reserved: int,
        threads: int = 0,
    ) -> None:
        self._engine = engine
        self._reserved = reserved
        self._threads = threads  # of the reserved, the sync ones (each takes a thread)
        self.executions = executions

    def start(
        self,
        parent_task: DurableTask[Any, Any] | None = None,
        *,
        stored_ids: Collection[str] | None = None,
        inserted_at_ms: int,
        stamped_at_ms: int | None = None,
    ) -> None:
        """The insert committed, at ``inserted_at_ms`` (the ``now_ms`` it passed; the storage
        stamped the rows with ``stamped_at_ms`` when it told, see
        :class:`~durable_execution.storage.abilities.StampedWrites`): run the executions
        claimed by this executor, and give back the slots of those it did not store
        (``stored_ids``: the ids it stored, when some were found existing instead).
        ``parent_task`` is their parent's task, when they have one."""
        self._engine._settle(self, parent_task, stored_ids, inserted_at_ms, stamped_at_ms)

    def release(self) -> None:
        """The insert did not commit: give every reserved slot back."""
        self._engine._settle(self, None, (), 0, None)  # nothing stored: no time is used


class ExecutionEngine:
    """Runs the loops for one executor. Knows tasks through ``tasks`` (id → definition)."""

    def __init__(
        self,
        *,
        storage: DurableStorage,
        options: ExecutorOptions,
        executor_id: str,
        tasks: Mapping[str, DurableTask[Any, Any]],
        clock: Callable[[], int],
    ) -> None:
        self._storage = storage
        # Whether the records this executor makes (inserted claimed: new_record) are as stored,
        # and the time of every write is the one passed (see _wake_for).
        self._caller_clock = isinstance(storage, CallerClock) and storage.stores_caller_times()
        self._options = options
        self._executor_id = executor_id
        self._tasks = tasks
        self._clock = clock
        self._logger: LoggerLike = options.logger
        self._batch = options.max_task_executions_per_batch
        self.running: dict[str, RunningExecution] = {}
        self._reserved = 0  # slots promised to executions being inserted claimed
        self._claims_held_back = False  # the last claim may have left ready executions behind
        self._claims_full = False  # the last claims returned full batches
        # Threads for sync tasks (max_task_threads): taken by the sync runs not over yet and
        # by sync claims and dispatches in flight.
        self._threads_busy = 0
        self._threads_held_back = False  # the last sync claim was cut short by the threads
        # More sync executions are ready than threads are free: claim them apart (see
        # _claim_within_threads) until a claim of them comes back short.
        self._sync_backlog = False
        self._dispatching = False  # direct dispatch only while the loops run
        self._limits = DataLimits(
            max_input_size=options.max_serialized_input_data_size,
            max_output_size=options.max_serialized_output_data_size,
            max_children=options.max_children_per_task_execution,
        )
        self.runner = AttemptRunner(
            serializer=options.serializer,
            limits=self._limits,
            clock=clock,
            max_threads=options.max_task_threads + 32,  # and for runs abandoned in their thread
            middleware=options.middleware,
            interrupt_sync_tasks=options.interrupt_sync_tasks,
        )
        self.writer = OutcomeWriter(storage, clock, self._on_outcomes_written, self._logger)
        interval_s = options.background_process_interval_ms / 1000
        self.finished = FinishedRecords()  # what waits and reads know without the storage
        # Final records computed for the write being told (see _wake_for), by execution id.
        self._computed: dict[str, ExecutionRecord] = {}
        self.reads = RecordReads(storage, self.finished)
        self.waiters = FinishWaiters(
            storage,
            min(interval_s, _MAX_WAITER_POLL_S),
            self._logger,
            runs_here=self.running.__contains__,
            finished=self.finished,
            reads=self.reads,
        )
        self._loops = {
            WorkKind.READY: BackgroundLoop("run", self._claim_and_run, interval_s, self._logger),
            WorkKind.ADVANCE: BackgroundLoop(
                "advance", self._advance_parents, interval_s, self._logger
            ),
            WorkKind.CLOSE: BackgroundLoop("close", self._close_finished, interval_s, self._logger),
            WorkKind.CANCEL: BackgroundLoop(
                "cancel", self._stop_cancelled, interval_s, self._logger
            ),
        }
        self._expire_loop = BackgroundLoop("expire", self._expire_leases, interval_s, self._logger)
        # Sleeping executions time out in the expiry work, when the storage has them.
        self._sleepers = storage if isinstance(storage, SleepingExecutions) else None
        self.heartbeat = Heartbeat(
            storage=storage,
            executor_id=executor_id,
            lease_ms=options.lease_ms,
            running=self.running,
            clock=clock,
            logger=self._logger,
        )
        # Runs of suspects (leases expired before: maybe a poison task); one at a time.
        self._suspects: set[str] = set()
        self._suspect_turn = 0  # which of two claims may take a suspect (_claim_within_threads)
        lag_s = options.loop_lag_warning_ms / 1000
        self._watchdog = LoopWatchdog(lag_s, self._logger, self.running) if lag_s else None
        self._remove_listener: Callable[[], None] | None = None
        # Per task, the longest a claim may last: its timeout plus leeway (the backstop that
        # renewals never pass; ``lease_ms_by_task`` of ``claim_ready_executions``).
        self.backstop_ms_by_task: dict[str, int] = {}
        # The same, split: sync tasks are claimed only as threads are free for them.
        self._sync_backstops: dict[str, int] = {}
        self._async_backstops: dict[str, int] = {}
        self.parent_task_ids: list[str] = []
        # The looping task of each loop's iteration task: an iteration hands over to the next
        # one whichever executor claimed it (see executor/iterations.py).
        self._loop_of_iteration: dict[str, DurableTask[Any, Any]] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    def tasks_changed(self) -> None:
        """Recompute what this executor claims after a task was registered: each task's
        backstop (its timeout plus leeway, see ``claim_ready_executions``).

        One claim serves every task, so a task whose claim parameters cannot be computed (its
        backstop out of range) would fail the claims of all the others: it is left out, with an
        error logged, and the others claim on. Definitions check their options, so this only
        guards against options changed after the fact.
        """
        leeway = self._options.expire_leeway_ms
        leases: dict[str, int] = {}
        for tid, task in self._tasks.items():
            if task.kind is TaskKind.SLEEPING:  # never claimed: a wake-up finishes it
                continue
            try:
                leases[tid] = claim_backstop_ms(task, leeway)
            except Exception:
                self._logger.exception(
                    "task %s cannot be claimed by this executor (its executions stay ready)", tid
                )
        self.backstop_ms_by_task = leases
        self._sync_backstops = {t: ms for t, ms in leases.items() if not self._tasks[t].is_async}
        self._async_backstops = {t: ms for t, ms in leases.items() if self._tasks[t].is_async}
        self.parent_task_ids = [tid for tid, t in self._tasks.items() if t.kind.has_children]
        self._loop_of_iteration = {
            t.loop.iteration.id: t for t in self._tasks.values() if t.loop is not None
        }
        self.wake(WorkKind.READY)

    def start(self) -> None:
        self._dispatching = True
        self._remove_listener = self._storage.add_wakeup_listener(self.wake)
        for loop in (*self._loops.values(), self._expire_loop):
            loop.start()
        self.heartbeat.start()
        if self._watchdog is not None:
            self._watchdog.start()

    def wake(self, kind: WorkKind) -> None:
        loop = self._loops.get(kind)
        if loop is not None:
            loop.wake()

    def announce_shutdown(self) -> None:
        """Tell the running tasks that the executor is shutting down (``ctx.is_shutting_down``)."""
        self.runner.shutdown_event.set()

    async def stop_loops(self) -> None:
        self._dispatching = False
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        await asyncio.gather(*(loop.stop() for loop in (*self._loops.values(), self._expire_loop)))

    async def finish_running(self, timeout_s: float) -> None:
        """Wait for running executions; stop those still running after ``timeout_s`` and give
        their leases back so another executor can take them at once. Their leases are
        renewed until then."""
        try:
            await self._finish_running(timeout_s)
        finally:
            await self.heartbeat.stop()

    async def _finish_running(self, timeout_s: float) -> None:
        executing = self._executing()
        if executing:
            await asyncio.wait(executing, timeout=timeout_s)
        still = self._executing()  # the others only wait for their outcome to be written
        leftovers = [r for r in self.running.values() if r.execute_task in still]
        for running in leftovers:
            running.stop(StopReason.SHUTDOWN)
        if still:
            # Stopped runs end at their next await; one that swallows its cancellation and
            # keeps going must not hang the shutdown.
            _, stuck = await asyncio.wait(still, timeout=_STOP_GRACE_S)
            if stuck:
                self._logger.warning("%d run(s) ignored their cancellation at shutdown", len(stuck))
        await self.runner.wait_for_interrupted_threads(_INTERRUPT_GRACE_S)
        in_threads = self.runner.still_running_in_threads()
        if in_threads:
            self._logger.warning(
                "%d sync task run(s) still running in their threads at shutdown (their results "
                "will be discarded; the threads do not keep the process alive): %s",
                len(in_threads),
                ", ".join(in_threads),
            )
        await self.writer.drain()
        leases = [(r.record.execution_id, r.record.lease_token) for r in leftovers]
        if leases:
            try:
                await self._storage.release_executions(leases, now_ms=self._clock())
            except Exception:
                self._logger.exception(
                    "releasing %d execution(s) at shutdown failed; their leases will expire",
                    len(leases),
                )
        await self.runner.close()
        if self._watchdog is not None:
            self._watchdog.stop()

    def _executing(self) -> set[asyncio.Task[None]]:
        """The asyncio tasks of the runs still going (``running`` holds each until its
        outcome is written or it ended without one, which is its task's last step)."""
        return {
            r.execute_task
            for r in self.running.values()
            if r.execute_task is not None and not r.execute_task.done()
        }

    # -- 1. run ------------------------------------------------------------------------------

    def free_slots(self) -> int:
        """Executions this executor may still take on (claims and direct dispatch)."""
        return self._options.max_concurrent_task_executions - len(self.running) - self._reserved

    def free_threads(self) -> int:
        """Sync executions this executor may still take on (``max_task_threads``)."""
        return self._options.max_task_threads - self._threads_busy

    async def _claim_and_run(self) -> bool:
        free = self.free_slots()
        self._claims_held_back = free <= 0
        if free <= 0 or not self.backstop_ms_by_task:
            return False
        limit = min(free, self._batch)
        if self._sync_backlog and self.free_threads() < limit:
            return await self._claim_within_threads(limit, self.free_threads())
        # While claims come back full and the slots allow it, two are in flight at once: the
        # next batch is on its way while this one runs, instead of the event loop idling for
        # a round trip (measured: docs/performance.md). An idle executor still sends one per
        # wake-up.
        count = 2 if self._claims_full and free >= 2 * limit else 1
        # One suspect at a time (see transitions.SUSPECT_LEASE_EXPIRIES): none while one
        # runs, and only the first of two claims in flight may take one.
        suspects = 0 if self._suspects else 1
        results = await asyncio.gather(
            *(self._claim(limit, suspects if n == 0 else 0) for n in range(count)),
            return_exceptions=True,
        )
        claimed = []
        for result in results:
            if isinstance(result, BaseException):
                raise result
            claimed.append(result)
        # Full batches: more may be waiting, possibly more than the free slots allow.
        self._claims_full = self._claims_held_back = all(n == limit for n in claimed)
        return self._claims_full

    async def _claim_within_threads(self, limit: int, threads: int) -> bool:
        """Claims while more sync executions are ready than threads are free
        (``max_task_threads``, fewer than the ``limit`` the slots allow): sync tasks only up to
        the free threads, so that a process busy with CPU-bound tasks does not hoard executions
        that processes with idle cores could run; async tasks in a claim of their own (both in
        flight at once) for the rest. A claim of sync tasks that comes back short ends the
        backlog: claims take every task together again (one round trip, two in flight)."""
        claims = [
            (backstops, n, sync)
            for backstops, n, sync in (
                (self._sync_backstops, threads, True),
                (self._async_backstops, limit - max(threads, 0), False),
            )
            if n > 0 and backstops
        ]
        self._claims_full = False
        self._threads_held_back = threads <= 0  # a thread that frees wakes the claims
        if not claims:
            return False
        # One suspect at a time still: of two claims, one may take it, each in turn (a
        # suspect of either kind is claimed within two claims).
        suspects = 0 if self._suspects else 1
        self._suspect_turn = turn = (self._suspect_turn + 1) % len(claims)
        results = await asyncio.gather(
            *(
                self._claim(n, suspects if i == turn else 0, backstops)
                for i, (backstops, n, _) in enumerate(claims)
            ),
            return_exceptions=True,
        )
        more = False
        for (_, n, sync), result in zip(claims, results, strict=True):
            if isinstance(result, BaseException):
                raise result
            if sync:  # full: more may be waiting (for a free thread)
                self._threads_held_back = self._sync_backlog = result == n
            elif result == n:
                more = True
        self._claims_held_back = more
        return more

    async def _claim(
        self, limit: int, max_suspects: int, backstops: Mapping[str, int] | None = None
    ) -> int:
        """Claim up to ``limit`` ready executions (of the tasks of ``backstops``, default all)
        and start them; returns how many were claimed.

        The ``limit`` slots stay reserved while the claim is in flight: what else takes slots
        meanwhile (direct dispatch of what this executor enqueues) sees them taken, so the
        claimed and the dispatched never run past ``max_concurrent_task_executions``. Threads
        are not reserved (an idle executor's claims would hold them all, and keep direct
        dispatch from a sync task's children and successor): sync executions claimed past the
        free threads are given back (see :meth:`_spawn_claimed`)."""
        now = self._clock()
        self._reserved += limit
        try:
            records = await self._storage.claim_ready_executions(
                executor_id=self._executor_id,
                lease_ms_by_task=self.backstop_ms_by_task if backstops is None else backstops,
                now_ms=now,
                limit=limit,
                lease_ms=self._options.lease_ms,
                max_suspects=max_suspects,
            )
        finally:
            self._reserved -= limit
        if self._sync_backstops:
            await self._spawn_claimed(records, now)
        else:
            for record in records:
                self._spawn(record, claimed_at_ms=now)
        return len(records)

    async def _spawn_claimed(self, records: list[ExecutionRecord], claimed_at_ms: int) -> None:
        """Start what a claim returned, the sync executions only as far as threads are free,
        and give the others back (``ready`` at once, as at shutdown): the claim took every
        task and found more sync executions than free threads (the next claims take them
        apart), or direct dispatch took the threads while the claim was in flight."""
        room = self.free_threads()
        extra: list[ExecutionRecord] = []
        for record in records:
            if record.task_id in self._sync_backstops:
                if room <= 0:
                    extra.append(record)
                    continue
                room -= 1
            self._spawn(record, claimed_at_ms=claimed_at_ms)
        if not extra:
            return
        # They are ready again: claim them apart, when a thread frees.
        self._threads_held_back = self._sync_backlog = True
        leases = [(r.execution_id, r.lease_token) for r in extra]
        try:
            await self._storage.release_executions(leases, now_ms=self._clock())
        except Exception:
            # Still claimed here: run them past the bound (the thread pool has room for
            # that) rather than leave them until their leases expire, counted against them.
            self._logger.warning(
                "giving back %d claimed execution(s) failed; running them past "
                "max_task_threads instead",
                len(extra),
                exc_info=True,
            )
            for record in extra:
                self._spawn(record, claimed_at_ms=claimed_at_ms)

    def _spawn(
        self,
        record: ExecutionRecord,
        parent_task: DurableTask[Any, Any] | None = None,
        claimed_at_ms: int | None = None,
        *,
        as_stored: bool = True,
    ) -> None:
        """Run ``record``. ``claimed_at_ms``: this executor's time of the claim, from which its
        lease and backstop are counted on this executor's clock (a storage on the database's
        clock returns them on that one; an execution inserted claimed is on ours already,
        unless its record has the storage's stamp). ``as_stored``: whether ``record`` is the
        execution as stored (a claim's is; one made here is when it has the storage's times),
        which lets its final record be computed (see :meth:`_wake_for`)."""
        task = self._tasks[record.task_id]
        if parent_task is None and record.parent_execution_id is not None:
            parent_task = self._loop_of_iteration.get(record.task_id)
        running = RunningExecution(record, task, self.runner.new_context(record), parent_task)
        running.record_as_stored = as_stored
        backstop_ms = self.backstop_ms_by_task.get(record.task_id)
        if claimed_at_ms is not None and backstop_ms is not None:
            running.lease_end_ms, running.timeout_at_ms = claim_times(
                claimed_at_ms, backstop_ms, self._options.lease_ms
            )
        self.running[record.execution_id] = running
        if is_suspect(record.lease_expiries):
            self._suspects.add(record.execution_id)
        # ``running`` keeps a reference to the task until the run is over: no done callback,
        # but for a sync task, whose thread is free again when its run is over.
        execute = asyncio.get_running_loop().create_task(self._execute(running))
        running.execute_task = execute
        if not task.is_async:
            self._threads_busy += 1
            execute.add_done_callback(self._thread_freed)

    def _thread_freed(self, _: object) -> None:
        self._threads_busy -= 1
        if self._threads_held_back:
            self._threads_held_back = False
            self._loops[WorkKind.READY].wake()

    async def _execute(self, running: RunningExecution) -> None:
        """Run one execution and hand its outcome to the writer. It keeps its concurrency
        slot (its place in ``running``) until the outcome is written."""
        record = running.record
        outcome = await self._attempt(running)
        if outcome is None:
            self._release(record.execution_id, recorded=False)
            return
        if running.parent_task is not None and outcome.status is S.COMPLETED:
            outcome = self._with_next_step(running, outcome)
        inserted = self._reserve_inserted(outcome, inherits_thread=not running.task.is_async)
        # Children are this run's; a successor is a sibling, of this run's parent.
        inserted_parent = running.task if outcome.children else running.parent_task

        def written(written_at_ms: int | None, stamped_at_ms: int | None) -> None:
            self._release(record.execution_id, recorded=written_at_ms is not None)
            if written_at_ms is not None:
                if inserted is not None:
                    inserted.start(inserted_parent, inserted_at_ms=written_at_ms)
                if stamped_at_ms is None and self._caller_clock:
                    stamped_at_ms = written_at_ms
                if not running.record_as_stored:
                    stamped_at_ms = None
                self._wake_for(record, outcome, stamped_at_ms)
            elif inserted is not None:
                inserted.release()

        self.writer.submit_nowait(outcome, lambda: running.lease_end_ms, written)

    async def _attempt(self, running: RunningExecution) -> ExecutionOutcome | None:
        """The outcome of one attempt; ``None`` when there is none to record (the run was
        stopped, or failed inside the engine)."""
        running.started = True
        if running.stop_reason is not None:  # stopped (cancelled) before it began
            return None
        try:
            return await self.runner.run(running)
        except asyncio.CancelledError:
            if running.stop_reason is None:  # not ours: the loop or the application
                self._release(running.record.execution_id, recorded=False)
                raise
        except Exception:
            record = running.record
            self._logger.exception("running %s (%s) failed", record.execution_id, record.task_id)
        return None

    # -- direct dispatch: run at once what this executor creates --------------------------------

    def reserve(self, executions: Sequence[NewExecution], extra_threads: int = 0) -> Reservation:
        """Reserve slots for the new executions this executor will run itself, inserted
        claimed by it: no claim round trip for them.

        Only while it runs, for tasks it knows, due now, within its free slots (and free
        threads, for sync tasks, plus ``extra_threads``: those of the run inserting them, about
        to be free), and at most one batch at a time, so big fan-outs stay shared with the
        other executors.
        """
        if not self._dispatching or not executions:
            return Reservation(self, list(executions), 0)
        budget = min(self.free_slots(), self._batch)
        thread_budget = self.free_threads() + extra_threads
        now = self._clock()
        result: list[NewExecution] = []
        reserved = threads = 0
        for new in executions:
            timeout_ms = self.backstop_ms_by_task.get(new.task_id)
            if reserved < budget and timeout_ms is not None and new.start_at_ms <= now:
                sync = new.task_id in self._sync_backstops
                if sync and threads >= thread_budget:
                    # Left ready, more than the threads: claim such apart, when a thread frees.
                    self._sync_backlog = self._threads_held_back = True
                else:
                    new = dataclasses.replace(
                        new,
                        claimed_by=self._executor_id,
                        claim_lease_ms=min(self._options.lease_ms, timeout_ms),
                        claim_timeout_ms=timeout_ms,
                    )
                    reserved += 1
                    threads += sync
            result.append(new)
        self._reserved += reserved
        self._threads_busy += threads
        return Reservation(self, result, reserved, threads)

    def _settle(
        self,
        reservation: Reservation,
        parent_task: DurableTask[Any, Any] | None,
        stored_ids: Collection[str] | None,
        inserted_at_ms: int,
        stamped_at_ms: int | None,
    ) -> None:
        """Start what a reservation stored (see :meth:`Reservation.start`), give back the rest."""
        if reservation._reserved == 0:
            return
        self._reserved -= reservation._reserved
        self._threads_busy -= reservation._threads
        reservation._reserved = reservation._threads = 0
        given_back = False
        for new in reservation.executions:
            if new.claimed_by != self._executor_id:
                continue
            if stored_ids is None or new.execution_id in stored_ids:
                self._spawn_inserted(new, parent_task, inserted_at_ms, stamped_at_ms)
            else:
                given_back = True
        if given_back and (self._claims_held_back or self._threads_held_back):
            self._loops[WorkKind.READY].wake()

    def _reserve_inserted(
        self, outcome: ExecutionOutcome, *, inherits_thread: bool
    ) -> Reservation | None:
        """Reserve what an outcome inserts, its children or its successor (see
        :meth:`reserve`); ``None`` when it inserts nothing (the common case: no cost). With
        ``inherits_thread`` (the run was a sync task's), the thread it frees may go to one of
        them."""
        extra = 1 if inherits_thread else 0
        if outcome.children:
            reservation = self.reserve(outcome.children, extra_threads=extra)
            outcome.children = reservation.executions
            return reservation
        if outcome.successor is not None:
            reservation = self.reserve([outcome.successor], extra_threads=extra)
            (outcome.successor,) = reservation.executions
            return reservation
        return None

    def _with_next_step(
        self, running: RunningExecution, outcome: ExecutionOutcome
    ) -> ExecutionOutcome:
        """A sequence's step or a loop's iteration completed: its outcome also inserts the
        next one, saving the closure and the advance of the parent in between."""
        assert running.parent_task is not None
        assert outcome.output is not None
        parent_task, now = running.parent_task, self._clock()
        if parent_task.loop is not None:
            successor = next_iteration(
                running.record, parent_task, outcome.output, self._options.serializer, now
            )
        else:
            successor = next_step(running.record, parent_task, outcome.output, self._limits, now)
        if successor is None:
            return outcome
        return dataclasses.replace(outcome, successor=successor)

    def _release(self, execution_id: str, *, recorded: bool) -> None:
        """Free an execution's concurrency slot; the run loop claims again if it was held
        back by the limit.

        Waits skip storage checks of executions that run here, counting on the outcome's
        write to wake them. A run that ends without its outcome recorded (stopped by a
        cancel, or its claim lost) wakes nobody: its waits check the storage instead.
        """
        if self.running.pop(execution_id, None) is not None and self._claims_held_back:
            self._loops[WorkKind.READY].wake()
        if self._suspects and execution_id in self._suspects:
            self._suspects.discard(execution_id)
            self._loops[WorkKind.READY].wake()  # the next suspect may be claimed
        if not recorded:
            self.waiters.recheck(execution_id)

    def _on_outcomes_written(self, outcomes: Sequence[ExecutionOutcome]) -> None:
        computed = None
        if self._computed:
            computed, self._computed = self._computed, {}
            self.finished.add_all(computed.values())
        self.finished.mark_finished(o.execution_id for o in outcomes if o.status is _COMPLETED)
        self.waiters.notify((o.execution_id for o in outcomes if o.status.is_finished), computed)

    def _spawn_inserted(
        self,
        new: NewExecution,
        parent_task: DurableTask[Any, Any] | None,
        inserted_at_ms: int,
        stamped_at_ms: int | None,
    ) -> None:
        """Run an execution inserted claimed by this executor. When the storage told its
        stamp, the record is made at the stamp, its start time moved with it (as stored), and
        the lease is counted on this executor's clock from the insert's time; else the record
        is made at the insert's time, as stored when the storage stores this executor's times."""
        if stamped_at_ms is None:
            record = new_record(new, inserted_at_ms)
            self._spawn(record, parent_task, as_stored=self._caller_clock)
            return
        record = new_record(new, stamped_at_ms)
        record.start_at_ms += stamped_at_ms - inserted_at_ms
        self._spawn(record, parent_task, claimed_at_ms=inserted_at_ms)

    def _wake_for(
        self, record: ExecutionRecord, outcome: ExecutionOutcome, stamped_at_ms: int | None
    ) -> None:
        """After ``outcome`` of ``record`` (as claimed) was recorded: wake the loops it gave
        work to (the storage's wake-ups would too, later or from afar: this is the fast path).
        A root that completed, and closed with it, is final: when ``record`` is as stored and
        the write's stamp is known (``stamped_at_ms``: the caller's time on a storage of
        :class:`~durable_execution.storage.abilities.CallerClock`, the time the storage
        returned on one of :class:`~durable_execution.storage.abilities.StampedWrites`),
        its record is computed and kept in the bounded memory of finished executions, whether
        or not anyone waits for it yet (handles awaited one by one reach it later: they read
        nothing); else it is read along with the next read for a wait (its handle is likely
        awaited next)."""
        for kind in outcome_work(record, outcome):
            self.wake(kind)
        status = outcome.status
        if (
            record.parent_execution_id is None
            and status is _COMPLETED
            and closes_at_once(None, status, record.unfinished_children)
        ):  # a root, completed and closed
            execution_id = record.execution_id
            if stamped_at_ms is not None and record.children_count == 0:
                # In place: the claim's record is not used past its outcome (no copy).
                apply_outcome(record, outcome, stamped_at_ms)
                self._computed[execution_id] = record  # kept before the waits are woken
            else:
                self.finished.mark_to_read(execution_id)

    # -- 2. advance --------------------------------------------------------------------------

    async def _advance_parents(self) -> bool:
        if not self.parent_task_ids:
            return False
        return await self._advance_batch() == self._batch

    async def _advance_batch(self) -> int:
        """Advance a batch of this executor's parents that can move on; how many it claimed."""
        lease_ms = self._options.expire_leeway_ms + _ADVANCE_LEASE_EXTRA_MS
        now = self._clock()
        parents = await self._storage.claim_parents_to_advance(
            task_ids=self.parent_task_ids, now_ms=now, lease_ms=lease_ms, limit=self._batch
        )
        serializer = self._options.serializer
        tasks = [self._tasks[p.record.task_id] for p in parents]
        outcomes = [
            (loop_advance if task.loop is not None else advance_outcome)(
                p, task, serializer, self._limits, self._clock()
            )
            for p, task in zip(parents, tasks, strict=True)
        ]
        reservations = [self._reserve_inserted(o, inherits_thread=False) for o in outcomes]
        applied = await asyncio.gather(*(self.writer.submit(o, now + lease_ms) for o in outcomes))
        for parent, task, outcome, children, written_at_ms in zip(
            parents, tasks, outcomes, reservations, applied, strict=True
        ):
            if written_at_ms is None:
                if children is not None:
                    children.release()
                continue
            if children is not None:
                children.start(task, inserted_at_ms=written_at_ms)
            # On the caller's clock the time of the write is its stamp; else it is not known
            # here (a parent that moves on rarely completes without children, and is read).
            self._wake_for(parent.record, outcome, written_at_ms if self._caller_clock else None)
        return len(parents)

    # -- 3. close ----------------------------------------------------------------------------

    async def _close_finished(self) -> bool:
        result = await self._close_batch()
        if result.closed:
            self._loops[WorkKind.ADVANCE].wake()
        return result.closed == self._batch or bool(result.finished_execution_ids)

    async def _close_batch(self) -> CloseResult:
        result = await self._storage.close_finished_executions(
            now_ms=self._clock(), limit=self._batch
        )
        if result.finished_execution_ids:
            self.waiters.notify(result.finished_execution_ids)
            for execution_id in result.finished_execution_ids:  # cancelled children run here?
                self.stop_local(execution_id)
        return result

    # -- at shutdown: the closure of what finished ---------------------------------------------

    async def settle_finished(self, timeout_s: float) -> None:
        """Close what finished and advance the parents that can move on, until none is left
        (or ``timeout_s`` passed): after the runs ended at shutdown, so that a parent whose
        last children just completed does not wait for the next start of some executor.

        Runs after :meth:`stop_loops` and :meth:`finish_running`: nothing is dispatched, so
        what an advance inserts (a completion task, the next step) stays ``ready`` for the next
        claim. A failure is logged, never raised: the loops of any executor do this later.
        """
        try:
            await asyncio.wait_for(self._settle_rounds(), timeout_s)
        except TimeoutError:
            self._logger.warning("closing finished executions at shutdown took over %ss", timeout_s)
        except Exception:
            self._logger.exception("closing finished executions at shutdown failed")

    async def _settle_rounds(self) -> None:
        for _ in range(_MAX_SETTLE_ROUNDS):
            closed = await self._close_batch()
            advanced = await self._advance_batch() if self.parent_task_ids else 0
            if not closed.closed and not closed.finished_execution_ids and not advanced:
                break
        await self.writer.drain()

    # -- 4. cancel ---------------------------------------------------------------------------

    async def _stop_cancelled(self) -> bool:
        if not self.running:
            return False
        ids = await self._storage.claim_cancellations(
            executor_id=self._executor_id, limit=self._batch
        )
        for execution_id in ids:
            self.stop_local(execution_id)
        return len(ids) == self._batch

    def stop_local(self, execution_id: str) -> None:
        """Stop a run of this executor whose execution was just cancelled."""
        running = self.running.get(execution_id)
        if running is not None:
            running.stop(StopReason.CANCELLED)

    # -- 5. expire ---------------------------------------------------------------------------

    async def _expire_leases(self) -> bool:
        more_sleepers = await self._time_out_sleepers()
        return await self._expire_running() or more_sleepers

    async def _time_out_sleepers(self) -> bool:
        """Time out the sleeping executions whose deadline passed (any task's: the storage
        keeps their timeout, whoever runs)."""
        if self._sleepers is None:
            return False
        ids = await self._sleepers.time_out_sleeping_executions(
            now_ms=self._clock(), limit=self._batch
        )
        if ids:
            self.waiters.notify(ids)
            self._loops[WorkKind.CLOSE].wake()
        return len(ids) == self._batch

    async def _expire_running(self) -> bool:
        ids = await self._storage.expire_leases(
            now_ms=self._clock(),
            limit=self._batch,
            max_lease_expiries=self._options.max_lease_expiries,
        )
        if ids:
            self._loops[WorkKind.READY].wake()
            self._loops[WorkKind.CLOSE].wake()  # those failed as crashed
            self._logger.warning(
                "%d running execution(s) outlived their lease (owner presumed dead); "
                "they are ready to run again, or failed as crashed when their lease expired "
                "%d times: %s",
                len(ids),
                self._options.max_lease_expiries,
                ", ".join(ids[:10]),
            )
        return len(ids) == self._batch
