"""Enqueueing root executions: what one enqueue call does between the caller (through the
middleware's hooks) and the storage.

1. Each :class:`~durable_execution.middleware.EnqueueRequest` becomes a new execution: its
   input validated when its task validates at enqueue (``validate_on_enqueue``), its options
   checked, its input serialized within the size limit, its attributes encoded. When one
   fails, nothing of the call is stored.
2. The insert, all or nothing: retried on transient storage failures
   (:mod:`~durable_execution.executor.insert_retry`) and shared with the enqueues running
   concurrently (:mod:`~durable_execution.executor.group_commit`), or made inside the caller's
   transaction.
   The executions this executor can run now are inserted claimed by it (direct dispatch, see
   :meth:`~durable_execution.executor.engine.ExecutionEngine.reserve`).
3. An idempotency key found already stored gives the stored execution, when it is of the same
   task with the same input; otherwise :class:`~durable_execution.errors.IdempotencyConflictError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from durable_execution.attributes import encode_attributes
from durable_execution.checks import MAX_DURATION_MS, MAX_PRIORITY, MIN_PRIORITY, check_int
from durable_execution.errors import IdempotencyConflictError, InputValidationError
from durable_execution.executor.engine import ExecutionEngine
from durable_execution.executor.group_commit import GroupCommit
from durable_execution.executor.insert_retry import insert_retrying
from durable_execution.executor.options import ExecutorOptions
from durable_execution.executor.sleeping import as_sleeping, check_unique_id
from durable_execution.ids import new_execution_id
from durable_execution.middleware import EnqueueRequest
from durable_execution.serialization import serialize_checked
from durable_execution.storage.abilities import TransactionalEnqueue
from durable_execution.storage.protocol import DurableStorage
from durable_execution.storage.records import ExecutionRecord, NewExecution, WorkKind
from durable_execution.task import TaskKind

__all__ = [
    "check_enqueue_options",
    "check_idempotency",
    "inputs_to_validate",
    "insert_roots",
    "new_root",
    "store_roots",
    "validate_inputs",
]


def check_enqueue_options(delay_ms: object, priority: object, idempotency_key: object) -> None:
    """Raise ``ValueError`` for an enqueue option of the wrong type or out of range:
    ``delay_ms`` from 0 to :data:`~durable_execution.checks.MAX_DURATION_MS` (10 years),
    ``priority`` a signed 32-bit integer."""
    if (  # the fast path, once per item: plain ints in range
        type(delay_ms) is not int
        or not 0 <= delay_ms <= MAX_DURATION_MS
        or type(priority) is not int
        or not MIN_PRIORITY <= priority <= MAX_PRIORITY
    ):
        check_int("delay_ms", delay_ms, minimum=0, maximum=MAX_DURATION_MS)
        check_int("priority", priority, minimum=MIN_PRIORITY, maximum=MAX_PRIORITY)
    if idempotency_key is not None and (
        not isinstance(idempotency_key, str) or not 0 < len(idempotency_key) <= 255
    ):
        raise ValueError("Invalid idempotency_key: expected a string of 1 to 255 characters")


def inputs_to_validate(
    requests: Sequence[EnqueueRequest], options: ExecutorOptions
) -> list[EnqueueRequest]:
    """The requests whose task validates its input at enqueue (its own
    ``validate_on_enqueue``, else the executor's option)."""
    return [
        request
        for request in requests
        if request.task.validator is not None
        and (
            options.validate_on_enqueue
            if request.task.validate_on_enqueue is None
            else request.task.validate_on_enqueue
        )
    ]


async def validate_inputs(requests: Sequence[EnqueueRequest]) -> None:
    """Run each request's task's validator on its input (see :func:`inputs_to_validate`); a
    refused input raises :class:`InputValidationError`, with the validator's error as its
    cause. What is stored stays the input as given: each run validates it again.
    """
    for request in requests:
        task = request.task
        assert task.validator is not None
        try:
            await task.validator(request.input)
        except Exception as exc:
            raise InputValidationError(
                f"Invalid input to task {task.id}: {exc}", task_id=task.id
            ) from exc


def new_root(request: EnqueueRequest, options: ExecutorOptions, now_ms: int) -> NewExecution:
    """The new execution a request asks for (its options were checked when it was made, but a
    middleware may have replaced it: they are checked again)."""
    task = request.task
    check_enqueue_options(request.delay_ms, request.priority, request.idempotency_key)
    data = serialize_checked(
        options.serializer,
        request.input,
        limit=options.max_serialized_input_data_size,
        what=f"Input of task {task.id}",
    )
    new = NewExecution(
        execution_id=new_execution_id(),
        task_id=task.id,
        input=data,
        start_at_ms=now_ms + task.options.sleep_ms_before_attempt + request.delay_ms,
        priority=request.priority,
        idempotency_key=request.idempotency_key,
        attributes=encode_attributes(request.attributes),
    )
    if task.kind is TaskKind.SLEEPING:  # its input is its unique id
        unique_id = check_unique_id(request.input, f"Enqueue of sleeping task {task.id}")
        return as_sleeping(new, task, unique_id)
    return new


async def insert_roots(
    engine: ExecutionEngine,
    storage: DurableStorage,
    options: ExecutorOptions,
    new: list[NewExecution],
    now_ms: int,
    *,
    maybe_stored: bool = False,
) -> list[str]:
    """Insert ``new`` on a connection of the storage's own (retried, dispatched directly: see
    the module docstring); returns the id stored for each. ``maybe_stored``: an earlier insert
    of them failed and may have committed (see :func:`insert_retrying`)."""
    reservation = engine.reserve(new)
    new = reservation.executions
    try:
        ids, stamp = await insert_retrying(
            storage, new, now_ms, options.logger, maybe_stored=maybe_stored
        )
    except BaseException:
        reservation.release()
        raise
    fresh = {n.execution_id for n, i in zip(new, ids, strict=True) if n.execution_id == i}
    reservation.start(stored_ids=fresh, inserted_at_ms=now_ms, stamped_at_ms=stamp)
    if any(n.claimed_by is None for n in new):
        engine.wake(WorkKind.READY)
    engine.waiters.inserted(fresh)  # no first check needed
    return ids


async def store_roots(
    engine: ExecutionEngine,
    storage: DurableStorage,
    options: ExecutorOptions,
    new: list[NewExecution],
    now_ms: int,
    inserts: GroupCommit,
    transactional: TransactionalEnqueue | None = None,
    connection: Any = None,
) -> list[str]:
    """Insert ``new`` (see the module docstring): through ``inserts``, which makes
    :func:`insert_roots` shared by concurrent callers, or in the caller's transaction. Returns,
    for each, the id of the execution stored for it: its own, or the one already stored
    under its idempotency key."""
    if transactional is not None:  # runnable only once the caller commits: no direct dispatch
        ids = await transactional.insert_executions_in_transaction(
            new, now_ms, connection=connection
        )
        fresh = {n.execution_id for n, i in zip(new, ids, strict=True) if n.execution_id == i}
        engine.wake(WorkKind.READY)  # none claimed
        engine.waiters.inserted(fresh)
    else:
        ids = await inserts.insert(new, now_ms)
    if any(n.execution_id != i for n, i in zip(new, ids, strict=True)):
        await check_idempotency(storage, options, new, ids)
    return ids


async def check_idempotency(
    storage: DurableStorage, options: ExecutorOptions, new: Sequence[NewExecution], ids: list[str]
) -> None:
    """Raise :class:`IdempotencyConflictError` when an execution found under its idempotency
    key is not of the same task with the same input."""
    found = [(n, i) for n, i in zip(new, ids, strict=True) if n.execution_id != i]
    stored = {r.execution_id: r for r in await storage.get_executions([i for _, i in found])}
    for request, execution_id in found:
        record = stored.get(execution_id)
        if record is not None and _same_work(record, request, options):
            continue
        if record is None:
            what = "which was removed meanwhile"
        elif record.task_id != request.task_id:
            what = f"of task {record.task_id}"
        else:
            what = "with another input"
        key = request.idempotency_key or ""
        raise IdempotencyConflictError(
            f"Idempotency key {key!r} of task {request.task_id} is already used by execution "
            f"{execution_id} {what}: use another key for other work",
            idempotency_key=key,
            execution_id=execution_id,
        )


def _same_work(record: ExecutionRecord, new: NewExecution, options: ExecutorOptions) -> bool:
    """Whether ``record`` is an execution of the same task on an equal input (equal once
    decoded: the same dict serialized in another key order is the same input)."""
    if record.task_id != new.task_id:
        return False
    if record.input == new.input:
        return True
    deserialize = options.serializer.deserialize
    try:
        return bool(deserialize(record.input) == deserialize(new.input))
    except Exception:  # a custom serializer may raise anything: not provably the same
        return False
