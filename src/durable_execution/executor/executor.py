"""The :class:`DurableExecutor`: define tasks, enqueue them, follow them, shut down cleanly."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import time
import types
from collections.abc import Coroutine, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar, overload

from durable_execution.attributes import attributes_mapping
from durable_execution.builders import BuilderMethods
from durable_execution.definitions import TaskDefiner
from durable_execution.errors import (
    DurableExecutionErrorInfo,
    DurableExecutionErrorType,
    DurableExecutionNotFoundError,
    ExecutorShutdownError,
)
from durable_execution.execution import DurableTaskExecution
from durable_execution.executor.engine import ExecutionEngine
from durable_execution.executor.enqueue import (
    inputs_to_validate,
    insert_roots,
    new_root,
    store_roots,
    validate_inputs,
)
from durable_execution.executor.enqueue_call import EnqueueCall, EnqueuePart
from durable_execution.executor.execution_wait import ExecutionWait, wait_for_execution
from durable_execution.executor.group_commit import GroupCommit
from durable_execution.executor.inspection import InspectionMethods
from durable_execution.executor.lifecycle import ExecutorState
from durable_execution.executor.maintenance import StorageMaintenance
from durable_execution.executor.options import DEFAULT_TASK_THREADS, ExecutorOptions, LoggerLike
from durable_execution.executor.presence import RegistrySettings, WorkerPresence
from durable_execution.executor.retention import RetentionLoop, RetentionSettings
from durable_execution.executor.sleeping import (
    WakeUpStatus,
    check_sleeping_task,
    check_unique_id,
    wakeup_values,
)
from durable_execution.executor.tree_methods import TreeMethods
from durable_execution.executor.workers import WorkerMethods
from durable_execution.handle import DurableTaskHandle
from durable_execution.ids import new_executor_id
from durable_execution.middleware import EnqueueRequest, Middleware, chain_enqueue
from durable_execution.serialization import Serializer
from durable_execution.status import DurableTaskExecutionStatus
from durable_execution.storage.abilities import (
    ExecutionPurge,
    SleepingExecutions,
    TransactionalEnqueue,
    require,
)
from durable_execution.storage.protocol import DurableStorage
from durable_execution.storage.records import ExecutionRecord, WorkKind
from durable_execution.storage.url import default_storage
from durable_execution.task import ChildTask, DurableTask, TaskKind

__all__ = ["DurableExecutor"]

InputT = TypeVar("InputT")
OutputT = TypeVar("OutputT")


_MIN_SETTLE_S = 1.0

_IN_CALLERS_TRANSACTION = "enqueue inside the caller's transaction (connection=...)"
_SLEEPING = "keep sleeping task executions (executor.sleeping_task)"


def _check_storage(storage: object) -> None:
    if isinstance(storage, type) or not isinstance(storage, DurableStorage):
        raise ValueError(f"Invalid storage {storage!r}: expected a DurableStorage implementation")


def _now_ms() -> int:
    return int(time.time() * 1000)


EnqueueItem = tuple[DurableTask[Any, Any], Any] | ChildTask[Any]


_OPTION_NAMES = frozenset(option.name for option in dataclasses.fields(ExecutorOptions))
_DEFAULT_WHEN_NONE = frozenset({"serializer", "logger"})


class DurableExecutor(TaskDefiner, BuilderMethods, WorkerMethods, InspectionMethods, TreeMethods):
    """Runs durable tasks stored in a :class:`~durable_execution.storage.DurableStorage`.

    ``DurableExecutor()`` without a storage uses ``$DURABLE_EXECUTION_STORAGE_URL``, or else the
    SQLite file ``./durable_execution.db``. Options are keyword-only and validated here; see
    :class:`~durable_execution.executor.options.ExecutorOptions` for each one. Several executors
    (in one process or many) may share one storage; each claims only executions of the tasks
    it has registered.

    Use ``async with DurableExecutor(...) as executor:`` or call :meth:`start` and
    :meth:`shutdown` yourself. An executor may be started again after a shutdown; what each
    state allows is tabled in :mod:`durable_execution.executor.lifecycle`.
    """

    def __init__(
        self,
        storage: DurableStorage | None = None,
        *,
        expire_leeway_ms: int = 10_000,
        lease_ms: int = 30_000,
        max_lease_expiries: int = 10,
        background_process_interval_ms: int = 250,
        max_concurrent_task_executions: int = 1_000,
        max_task_threads: int = DEFAULT_TASK_THREADS,
        max_task_executions_per_batch: int = 100,
        max_children_per_task_execution: int = 1_000,
        max_serialized_input_data_size: int = 1024 * 1024,
        max_serialized_output_data_size: int = 1024 * 1024,
        shutdown_timeout_ms: int = 10_000,
        loop_lag_warning_ms: int = 1_000,
        maintenance_interval_ms: int = 60_000,
        interrupt_sync_tasks: bool = False,
        validate_on_enqueue: bool = False,
        retention: dt.timedelta | None = None,
        serializer: Serializer | None = None,
        logger: LoggerLike | None = None,
        middleware: Sequence[Middleware] = (),
    ) -> None:
        # The keywords above are ExecutorOptions' fields (a test keeps them equal); None for
        # serializer and logger means the option's default.
        option_values = {
            name: value
            for name, value in locals().items()
            if name in _OPTION_NAMES and (value is not None or name not in _DEFAULT_WHEN_NONE)
        }
        if not isinstance(middleware, Sequence):
            raise ValueError(f"Invalid option middleware={middleware!r}: expected a list")
        option_values["middleware"] = tuple(middleware)
        self.options = ExecutorOptions(**option_values)
        if storage is not None:
            _check_storage(storage)
        self._owns_storage = storage is None
        self.storage: DurableStorage = storage if storage is not None else default_storage()
        self._retired_storages: list[DurableStorage] = []  # owned, replaced: close at shutdown
        self.executor_id = new_executor_id()
        super().__init__(self._register)
        self._tasks: dict[str, DurableTask[Any, Any]] = {}
        self._state = ExecutorState.NEW
        self._initialized = False
        self._starting: asyncio.Future[None] | None = None
        self._shutdown_task: asyncio.Future[None] | None = None
        self._clock = _now_ms
        self._engine = self._new_engine()
        self._registry_settings = RegistrySettings()
        self._presence: WorkerPresence | None = None  # while started (storage/workers.py)
        self._maintenance: StorageMaintenance | None = None  # while started
        self._retention_settings = RetentionSettings()
        self._retention_loop: RetentionLoop | None = None  # while started, with retention
        if self.options.retention is not None:
            require(self.storage, ExecutionPurge, "purge old executions (retention=...)")

    def _new_engine(self) -> ExecutionEngine:
        engine = ExecutionEngine(
            storage=self.storage,
            options=self.options,
            executor_id=self.executor_id,
            tasks=self._tasks,
            clock=self._clock,
        )
        engine.tasks_changed()
        # Enqueues share inserts through the engine of the moment, on the storage of the moment.
        self._inserts = GroupCommit(
            functools.partial(insert_roots, engine, self.storage, self.options)
        )
        return engine

    def __repr__(self) -> str:
        return f"DurableExecutor({self.storage!r}, state={self._state.value})"

    def use_storage(self, storage: DurableStorage) -> None:
        """Run on ``storage`` from now on; only while not started (new, or shut down).

        Made for tests: application tasks defined at import time on a module-level executor
        run on an :class:`~durable_execution.storage.memory.InMemoryStorage` (see
        :func:`durable_execution.testing.in_memory`, which also puts the previous storage
        back). The caller closes ``storage``. A storage the executor created itself (no storage
        was passed) is closed at the next :meth:`shutdown`; one passed in is left as it is.
        Handles obtained before read from the new storage.

        Raises :class:`RuntimeError` while the executor is starting, started or shutting down.
        """
        self._replace_storage(storage, owned=False)

    def _replace_storage(
        self, storage: DurableStorage, *, owned: bool
    ) -> tuple[DurableStorage, bool]:
        """Put ``storage`` in place, closed at shutdown if ``owned``; returns the previous
        storage and whether it was owned (to put it back as it was)."""
        _check_storage(storage)
        if self._state.runs or self._starting is not None:
            now = "starting" if self._starting is not None else self._state.value.replace("_", " ")
            raise RuntimeError(
                f"Cannot replace the storage of an executor that is {now}: "
                "call use_storage() before start() or after shutdown()"
            )
        previous = (self.storage, self._owns_storage)
        if self._owns_storage and self.storage is not storage:
            self._retired_storages.append(self.storage)
        if storage in self._retired_storages:  # owned again
            self._retired_storages.remove(storage)
        self.storage, self._owns_storage = storage, owned
        self._initialized = False
        self._engine = self._new_engine()  # its writer and waiters use the storage
        return previous

    def set_options(self, **options: Any) -> None:
        """Change some options (keywords of the constructor, except ``middleware``); only
        while not started (new, or shut down). Made for the ``durable-execution worker``
        command, whose flags override what the application chose.

        Raises ``ValueError`` for an unknown or invalid option (nothing changes then), and
        :class:`RuntimeError` while the executor is starting, started or shutting down.
        """
        unknown = set(options) - (_OPTION_NAMES - {"middleware"})
        if unknown:
            raise ValueError(f"Unknown executor option(s): {', '.join(sorted(unknown))}")
        if self._state.runs or self._starting is not None:
            raise RuntimeError("Cannot change the options of a running executor")
        self.options = dataclasses.replace(self.options, **options)  # validates them
        self._engine = self._new_engine()  # it reads the options

    @property
    def registered_tasks(self) -> Mapping[str, DurableTask[Any, Any]]:
        """The tasks defined on this executor, by id (read-only; completion and iteration
        tasks included, under the ids the engine gave them)."""
        return types.MappingProxyType(self._tasks)

    @property
    def state(self) -> ExecutorState:
        """Where the executor is in its lifecycle: new, started, shutting down or shut down."""
        return self._state

    # -- definitions -------------------------------------------------------------------------

    def _check_open(self, action: str) -> None:
        if not self._state.accepts_work:
            raise ExecutorShutdownError(
                f"Cannot {action}: the executor was shut down (start() starts it again)"
            )

    def _register(self, tasks: list[DurableTask[Any, Any]]) -> None:
        self._check_open("define a task")
        if any(task.kind is TaskKind.SLEEPING for task in tasks):
            require(self.storage, SleepingExecutions, _SLEEPING)
        seen: set[str] = set()
        for task in tasks:
            if task.id in self._tasks or task.id in seen:
                raise ValueError(f"Task id {task.id!r} is already defined on this executor")
            seen.add(task.id)
        for task in tasks:
            self._tasks[task.id] = task
        self._engine.tasks_changed()
        if self._presence is not None:
            self._presence.tasks_changed()

    # -- lifecycle ---------------------------------------------------------------------------

    async def _ensure_initialized(self) -> None:
        if not self._initialized:
            await self.storage.initialize()
            self._initialized = True

    async def start(self) -> None:
        """Prepare the storage and start the background loops; returns once they run.

        Starting a started executor does nothing. After a shutdown, it starts again with fresh
        background loops and worker threads; a shutdown in progress is awaited first.
        """
        while True:
            if self._state is ExecutorState.SHUTTING_DOWN:
                await self.shutdown()
            if self._state is ExecutorState.STARTED:
                return
            if self._starting is None:
                break
            await asyncio.shield(self._starting)  # another caller starts it; did it?
        # Started inline by the first caller (no task in between), the others wait for it.
        starting = self._starting = asyncio.get_running_loop().create_future()
        try:
            if self._state is ExecutorState.SHUT_DOWN:  # the last engine is spent
                self._engine = self._new_engine()
            self._initialized = False  # each start makes sure (idempotent; may reopen it)
            await self._ensure_initialized()
            self._state = ExecutorState.STARTED
            self._shutdown_task = None
            self._engine.start()
            self._presence = self._new_presence()
            await self._presence.start()
            self._maintenance = StorageMaintenance(
                storage=self.storage,
                interval_ms=self.options.maintenance_interval_ms,
                logger=self.options.logger,
            )
            self._maintenance.start()
            self._start_retention()
        finally:
            self._starting = None
            starting.set_result(None)

    def _start_retention(self) -> None:
        retention = self.options.retention
        if retention is None:
            return
        self._retention_loop = RetentionLoop(
            storage=require(self.storage, ExecutionPurge, "purge old executions (retention=...)"),
            executor_id=self.executor_id,
            retention=retention,
            clock=lambda: self._clock(),
            logger=self.options.logger,
            settings=self._retention_settings,
        )
        self._retention_loop.start()

    def _new_presence(self) -> WorkerPresence:
        return WorkerPresence(
            storage=self.storage,
            executor_id=self.executor_id,
            task_ids=self._tasks.keys,
            clock=lambda: self._clock(),
            logger=self.options.logger,
            settings=self._registry_settings,
        )

    async def shutdown(self) -> None:
        """Shut down gracefully; idempotent.

        Stops accepting enqueues and definitions, stops the background loops after their
        current iteration, then waits up to ``shutdown_timeout_ms`` for running executions
        (their context reports the shutdown). Executions still running then are stopped and
        given back as ``ready``, for another executor or the next start. Then it closes what
        finished and advances the parents that can move on (within what is left of the
        timeout, at least a second), so a parent whose children all completed completes now.
        Closes the storage when the executor created it (no storage was passed). A start in
        progress is awaited first.
        """
        if self._starting is not None:
            await asyncio.shield(self._starting)
        if self._state is ExecutorState.SHUT_DOWN:
            return
        if self._shutdown_task is None:
            self._shutdown_task = asyncio.ensure_future(self._shutdown())
        await asyncio.shield(self._shutdown_task)

    async def _shutdown(self) -> None:
        was_started = self._state is ExecutorState.STARTED
        self._state = ExecutorState.SHUTTING_DOWN
        self._engine.announce_shutdown()
        try:
            # Enqueues accepted before (enqueue_task starts at the call) are stored first, and
            # what they dispatched here is run or given back below: nothing accepted is lost,
            # nor inserted after the storage closed.
            await self._inserts.drain()
            if was_started:
                timeout_s = self.options.shutdown_timeout_ms / 1000
                deadline = time.monotonic() + timeout_s
                await self._engine.stop_loops()
                if self._maintenance is not None:
                    maintenance, self._maintenance = self._maintenance, None
                    await maintenance.stop()
                await self._engine.finish_running(timeout_s)
                # What the runs finished is closed, and their parents advanced, now rather
                # than at the next start (within what is left of the timeout, at least 1 s).
                remaining_s = max(_MIN_SETTLE_S, deadline - time.monotonic())
                await self._engine.settle_finished(remaining_s)
            if self._retention_loop is not None:
                retention, self._retention_loop = self._retention_loop, None
                await retention.stop()
            if self._presence is not None:  # listed as a worker until its runs ended
                presence, self._presence = self._presence, None
                await presence.stop()
            if self._owns_storage:
                self._initialized = False  # a later use opens it again
                await self.storage.close()
            retired, self._retired_storages = self._retired_storages, []
            for storage in retired:
                await storage.close()
        finally:
            self._state = ExecutorState.SHUT_DOWN

    async def __aenter__(self) -> DurableExecutor:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown()

    # -- enqueue -----------------------------------------------------------------------------

    def _registered(self, task: object) -> DurableTask[Any, Any]:
        if not isinstance(task, DurableTask):
            raise ValueError(f"Expected a DurableTask, got {task!r}")
        if self._tasks.get(task.id) is not task:
            raise ValueError(f"Task {task.id!r} is not registered on this executor")
        if task.is_completion:
            raise ValueError(
                f"Task {task.id!r} is an on_run_and_children_complete task; enqueue its parent"
            )
        return task

    @overload
    def enqueue_task(
        self,
        task: DurableTask[None, OutputT],
        input: None = None,
        *,
        delay_ms: int = 0,
        priority: int = 0,
        idempotency_key: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        connection: Any = None,
    ) -> Coroutine[Any, Any, DurableTaskHandle[OutputT]]: ...

    @overload
    def enqueue_task(
        self,
        task: DurableTask[InputT, OutputT],
        input: InputT,
        *,
        delay_ms: int = 0,
        priority: int = 0,
        idempotency_key: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        connection: Any = None,
    ) -> Coroutine[Any, Any, DurableTaskHandle[OutputT]]: ...

    def enqueue_task(
        self,
        task: DurableTask[Any, OutputT],
        input: Any = None,
        *,
        delay_ms: int = 0,
        priority: int = 0,
        idempotency_key: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        connection: Any = None,
    ) -> Coroutine[Any, Any, DurableTaskHandle[OutputT]]:
        """Store a new execution of ``task``: ``await`` the result for its handle.

        Typed: a ``DurableTask[In, Out]`` takes an ``In`` (nothing, for a task whose run
        function takes no input) and gives a ``DurableTaskHandle[Out]``.

        Called from a running event loop, the enqueue starts at the call, and what it returns
        is a future that is also a coroutine (as a handle's ``wait_and_get_execution``):
        ``await`` it, ``asyncio.gather`` many of them (enqueues made in the same turn of the
        loop share one insert and one commit), or pass it to ``asyncio.create_task`` and the
        like. The await returns once the execution is stored (committed). Cancelled before
        its insert began, nothing is stored; after, the execution is stored and runs. Called
        without a running loop, it is a plain coroutine, started when awaited.

        Raises, storing nothing, when the task is not registered here, the input or
        the attributes are not serializable or over their size limit, or after shutdown; and,
        when the task validates its input at enqueue (``validate_on_enqueue``), raises
        :class:`~durable_execution.errors.InputValidationError` for an invalid input (what is
        stored is the input as given: each run validates it again).
        ``delay_ms`` delays the first attempt; higher ``priority`` runs first; a second enqueue
        with the same ``idempotency_key`` returns the first one's handle instead of enqueueing
        again. ``attributes``: free metadata (a JSON object of at most 16 KiB) stored with the
        execution and inherited by its children (see :mod:`durable_execution.attributes`).

        ``connection``: enqueue inside the application's own open transaction, atomically with
        its other writes (PostgreSQL: a psycopg ``AsyncConnection`` on the same database). The
        execution exists, and runs, only once that transaction commits. A storage without the
        :class:`~durable_execution.storage.abilities.TransactionalEnqueue` ability raises
        :class:`~durable_execution.errors.UnsupportedByStorageError`.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a plain coroutine, started when awaited
            return self._enqueue_one(
                task, input, delay_ms, priority, idempotency_key, attributes, connection
            )
        call: EnqueueCall[DurableTaskHandle[OutputT]] = EnqueueCall.on(loop)
        if connection is None and self._initialized and not self.options.middleware:
            # The common case, in fewer steps (as _enqueue and _store do it): a gather of
            # many enqueues shares one insert (executor/enqueue_call.py): this is their cost.
            try:
                self._check_open("enqueue a task")
                request = EnqueueRequest(
                    task=self._registered(task),
                    input=input,
                    attributes=attributes_mapping(attributes),
                    delay_ms=delay_ms,
                    priority=priority,
                    idempotency_key=idempotency_key,
                )
                if request.task.validator is None or not inputs_to_validate(
                    (request,), self.options
                ):
                    now = self._clock()
                    new = new_root(request, self.options, now)
                    call.submit(self._inserts, EnqueuePart(new, now, call, self))
                    return call
            except Exception as exc:
                call.set_exception(exc)
                return call
        # Validation, middleware, a transaction: the whole chain, in a task of its own.
        call.follow(
            self._enqueue_one(
                task, input, delay_ms, priority, idempotency_key, attributes, connection
            )
        )
        return call

    async def _enqueue_one(
        self,
        task: DurableTask[Any, OutputT],
        input: Any,
        delay_ms: int,
        priority: int,
        idempotency_key: str | None,
        attributes: Mapping[str, Any] | None,
        connection: Any,
    ) -> DurableTaskHandle[OutputT]:
        handles = await self._enqueue(
            [(task, input, None)],
            delay_ms=delay_ms,
            priority=priority,
            keys=[idempotency_key],
            attributes=attributes,
            connection=connection,
        )
        return handles[0]

    @overload
    async def enqueue_tasks(
        self,
        items: Sequence[tuple[DurableTask[InputT, OutputT], InputT]],
        *,
        delay_ms: int = 0,
        priority: int = 0,
        attributes: Mapping[str, Any] | None = None,
        connection: Any = None,
    ) -> list[DurableTaskHandle[OutputT]]: ...

    @overload
    async def enqueue_tasks(
        self,
        items: Sequence[EnqueueItem],
        *,
        delay_ms: int = 0,
        priority: int = 0,
        attributes: Mapping[str, Any] | None = None,
        connection: Any = None,
    ) -> list[DurableTaskHandle[Any]]: ...

    async def enqueue_tasks(
        self,
        items: Sequence[EnqueueItem],
        *,
        delay_ms: int = 0,
        priority: int = 0,
        attributes: Mapping[str, Any] | None = None,
        connection: Any = None,
    ) -> list[DurableTaskHandle[Any]]:
        """Enqueue many executions in one storage round trip; all are stored, or none.

        ``items`` are ``(task, input)`` pairs or :class:`ChildTask` values (whose own
        attributes override ``attributes`` key by key); ``connection`` as for
        :meth:`enqueue_task`. With validation at enqueue, one invalid input stores nothing of
        the batch. Typed: pairs of one task type give handles of its output; a mix of tasks
        gives untyped handles (build each item as a ``ChildTask`` to have its input checked).
        """
        triples: list[tuple[Any, Any, Mapping[str, Any] | None]] = []
        for item in items:
            if isinstance(item, ChildTask):
                triples.append((item.task, item.input, item.attributes))
                continue
            pair = tuple(item)
            if len(pair) != 2:
                raise ValueError(f"enqueue_tasks expects (task, input) pairs, got {pair!r}")
            triples.append((pair[0], pair[1], None))
        return await self._enqueue(
            triples,
            delay_ms=delay_ms,
            priority=priority,
            keys=[None] * len(triples),
            attributes=attributes,
            connection=connection,
        )

    async def _enqueue(
        self,
        items: Sequence[tuple[Any, Any, Mapping[str, Any] | None]],
        *,
        delay_ms: int,
        priority: int,
        keys: Sequence[str | None],
        attributes: Mapping[str, Any] | None,
        connection: Any = None,
    ) -> list[DurableTaskHandle[Any]]:
        self._check_open("enqueue a task")
        transactional = (
            None
            if connection is None
            else require(self.storage, TransactionalEnqueue, _IN_CALLERS_TRANSACTION)
        )
        shared = attributes_mapping(attributes)
        requests = [
            EnqueueRequest(
                task=self._registered(task),
                input=input,
                attributes={**shared, **attributes_mapping(own)} if own else shared,
                delay_ms=delay_ms,
                priority=priority,
                idempotency_key=key,
            )
            for (task, input, own), key in zip(items, keys, strict=True)
        ]
        if not requests:
            return []
        if self.options.middleware:
            store = functools.partial(
                self._store, transactional=transactional, connection=connection
            )
            return await chain_enqueue(self.options.middleware, store)(requests)
        return await self._store(requests, transactional, connection)

    async def _store(
        self,
        requests: Sequence[EnqueueRequest],
        transactional: TransactionalEnqueue | None,
        connection: Any,
    ) -> list[DurableTaskHandle[Any]]:
        """The end of the enqueue chain: validate, build, insert (see executor/enqueue.py)."""
        to_validate = inputs_to_validate(requests, self.options)
        if to_validate:
            await validate_inputs(to_validate)  # all of them before storing any
        now = self._clock()
        new = [new_root(request, self.options, now) for request in requests]
        if not self._initialized:
            await self._ensure_initialized()
        ids = await store_roots(
            self._engine,
            self.storage,
            self.options,
            new,
            now,
            self._inserts,
            transactional,
            connection,
        )
        return [
            DurableTaskHandle(self, n.task_id, execution_id)
            for n, execution_id in zip(new, ids, strict=True)
        ]

    # -- handles -----------------------------------------------------------------------------

    async def get_task_handle(
        self, task: DurableTask[InputT, OutputT], execution_id: str
    ) -> DurableTaskHandle[OutputT]:
        """A handle to an existing execution of ``task`` (for example after a restart).

        Raises :class:`~durable_execution.errors.DurableExecutionNotFoundError` when no
        execution of that task has this id.
        """
        self._check_open("get a task handle")
        task = self._registered(task)
        await self._ensure_initialized()
        record = await self._engine.reads.read_one(execution_id)
        if record is None or record.task_id != task.id:
            raise DurableExecutionNotFoundError(
                f"No execution {execution_id} of task {task.id} was found"
            )
        return DurableTaskHandle(self, task.id, execution_id)

    async def get_execution(
        self, execution_id: str, *, check_workers: bool = False
    ) -> DurableTaskExecution[Any]:
        """The execution with this id, of any task, as stored now (handy for dashboards).

        ``check_workers=True`` also fills ``unserved_task_ids`` (and so ``unserved``): the
        tasks that no live executor registered and that keep it waiting, its own or those of
        its unfinished descendants. It costs a read of the workers and one read per level of
        unfinished descendants; without it, nothing more than the execution is read. A storage
        without the :class:`~durable_execution.storage.abilities.WorkerRegistry` ability
        raises :class:`~durable_execution.errors.UnsupportedByStorageError` then.

        Raises :class:`~durable_execution.errors.DurableExecutionNotFoundError` when unknown.
        """
        await self._ensure_initialized()
        return await self._read_execution(execution_id, check_workers)

    async def _read_execution(
        self, execution_id: str, check_workers: bool = False
    ) -> DurableTaskExecution[Any]:
        """Read from memory when final, else from the storage, in one read shared with the
        other reads of the moment (see :mod:`durable_execution.executor.reads`)."""
        record = await self._engine.reads.read_one(execution_id)
        if record is None:
            raise DurableExecutionNotFoundError(f"No execution {execution_id} was found")
        execution = DurableTaskExecution.from_record(record, self.options.serializer)
        if not check_workers:
            return execution
        unserved = await self._unserved_task_ids(record)
        return dataclasses.replace(execution, unserved_task_ids=unserved)

    def _wait_and_read(
        self, execution_id: str, timeout: float | None
    ) -> ExecutionWait[DurableTaskExecution[Any]]:
        """``wait_and_get_execution`` of a handle: a future resolved with the execution once
        finished, decoded at once when its final record is known (see
        :mod:`durable_execution.executor.execution_wait`)."""
        return wait_for_execution(
            self._engine.waiters, execution_id, timeout, self.options.serializer
        )

    async def wait_until_finished(
        self, handles: Sequence[DurableTaskHandle[Any]], *, timeout: float | None = None
    ) -> None:
        """Wait until all these executions are finished (without reading them).

        ``timeout`` is in seconds; past it, :class:`TimeoutError`.
        """
        await self._engine.waiters.wait({handle.execution_id for handle in handles}, timeout)

    async def wait_and_get_executions(
        self, handles: Sequence[DurableTaskHandle[OutputT]], *, timeout: float | None = None
    ) -> list[DurableTaskExecution[OutputT]]:
        """Wait until all these executions are finished, then return them, in order.

        Like ``wait_and_get_execution`` on each handle, in a few storage calls however many
        handles there are. ``timeout`` is in seconds; past it, :class:`TimeoutError`.
        """
        ids = [handle.execution_id for handle in handles]
        # Those this executor completes meanwhile come with their records (when it computes
        # them, see executor/finished.py): only the others are read.
        computed: dict[str, ExecutionRecord] = {}
        await self._engine.waiters.wait(set(ids), timeout, computed)
        to_read = [i for i in ids if i not in computed] if computed else ids
        records = await self._engine.reads.read(to_read, read_ahead=True) if to_read else {}
        if computed:
            records.update(computed)
        missing = [i for i in ids if i not in records]
        if missing:
            raise DurableExecutionNotFoundError(f"No execution {missing[0]} was found")
        serializer = self.options.serializer
        return [DurableTaskExecution.from_record(records[i], serializer) for i in ids]

    # -- sleeping tasks ----------------------------------------------------------------------

    async def wakeup_sleeping_task_execution(
        self,
        task: DurableTask[str, OutputT],
        unique_id: str,
        *,
        status: WakeUpStatus = "completed",
        output: OutputT | None = None,
        error: BaseException | None = None,
    ) -> DurableTaskExecution[OutputT]:
        """Wake up the sleeping execution of ``task`` whose unique id is ``unique_id``: it
        becomes ``completed`` with ``output``, or (``status="failed"``) ``failed`` with
        ``error`` (a :class:`~durable_execution.errors.DurableExecutionError`, or any
        exception); its parent then moves on at once, as after any child.

        Works from any process on the storage, on an executor that was never started (a web
        handler's): ``task`` need only be defined on it. Atomic: of concurrent wake-ups, the
        timeout and a cancellation, the first wins and the others change nothing. Returns the
        execution as it is after the call: the one just woken up, or, when that id no longer
        sleeps, the latest execution with that id, unchanged (check its ``status``).

        Raises :class:`~durable_execution.errors.DurableExecutionNotFoundError` when no
        execution of ``task`` has that unique id, :class:`ValueError` for a task that is not
        a sleeping task or an invalid status, output or error.
        """
        self._check_open("wake up a sleeping task execution")
        task = check_sleeping_task(task)
        unique_id = check_unique_id(unique_id, "wakeup_sleeping_task_execution")
        new_status, data, info = wakeup_values(
            status,
            output,
            error,
            self.options.serializer,
            self.options.max_serialized_output_data_size,
            task.id,
        )
        sleepers = require(self.storage, SleepingExecutions, _SLEEPING)
        await self._ensure_initialized()
        record = await sleepers.wake_up_sleeping_execution(
            task.id, unique_id, now_ms=self._clock(), status=new_status, output=data, error=info
        )
        if record is None:
            raise DurableExecutionNotFoundError(
                f"No execution of sleeping task {task.id} has the unique id {unique_id!r}"
            )
        if record.is_finished:
            self._engine.finished.add(record)
            self._engine.waiters.notify([record.execution_id])
            if record.parent_execution_id is not None:
                self._engine.wake(WorkKind.CLOSE)
        return DurableTaskExecution.from_record(record, self.options.serializer)

    async def _cancel_execution(self, execution_id: str) -> None:
        error = DurableExecutionErrorInfo(
            message="Task execution cancelled",
            error_type=DurableExecutionErrorType.CANCELLED,
            is_retryable=False,
        )
        record = await self.storage.cancel_execution(
            execution_id, now_ms=self._clock(), error=error
        )
        if record is None:
            raise DurableExecutionNotFoundError(f"No execution {execution_id} was found")
        self._engine.finished.add(record)  # as stored: kept when final
        if record.status is DurableTaskExecutionStatus.CANCELLED:
            self._engine.stop_local(execution_id)
        self._engine.waiters.notify([execution_id])
        self._engine.wake(WorkKind.CLOSE)
