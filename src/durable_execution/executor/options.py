"""The executor's options, validated once at construction.

:class:`ExecutorOptions` is the one list of them: name, default, bounds (the field's metadata)
and meaning. ``DurableExecutor.__init__`` repeats the names and defaults as keywords, for type
checkers and editors; a test keeps both equal, and keeps the README's list complete.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass, field, fields
from typing import Any

from durable_execution.checks import MAX_DURATION_MS, check_int
from durable_execution.middleware import Middleware
from durable_execution.serialization import JsonSerializer, Serializer

__all__ = ["DEFAULT_TASK_THREADS", "MAX_DATA_SIZE_LIMIT", "ExecutorOptions", "LoggerLike"]

LoggerLike = logging.Logger | logging.LoggerAdapter[logging.Logger]

MIB = 1024 * 1024
MAX_DATA_SIZE_LIMIT = 10 * MIB
MAX_CHILDREN_LIMIT = 100_000
MAX_LEASE_MS = 24 * 3600 * 1000
MAX_LEASE_EXPIRIES_LIMIT = 1_000_000
MAX_INTERVAL_MS = 3_600_000
MAX_CONCURRENCY = 100_000
MAX_BATCH = 10_000
# Python's own thread pools' default (``concurrent.futures``, ``asyncio.to_thread``).
DEFAULT_TASK_THREADS = min(32, (os.cpu_count() or 1) + 4)
MAX_RETENTION = dt.timedelta(days=36_500)


def _int(default: int, minimum: int, maximum: int) -> Any:
    """An integer option's field: its default and its bounds."""
    return field(default=default, metadata={"minimum": minimum, "maximum": maximum})


def _default_logger() -> logging.Logger:
    return logging.getLogger("durable_execution")


@dataclass(frozen=True, slots=True)
class ExecutorOptions:
    """Tuning of a :class:`~durable_execution.DurableExecutor`. All times in milliseconds."""

    expire_leeway_ms: int = _int(10_000, 0, MAX_DURATION_MS)
    """Added to a task's timeout to form the backstop of its claims: a lease is never renewed
    past the claim's start plus the timeout plus this leeway, whatever the heartbeats say
    (the owner itself stops the run at its timeout). At most 10 years."""
    lease_ms: int = _int(30_000, 100, MAX_LEASE_MS)
    """How long a claim holds an execution without news from its owner (at most one day).
    The owner renews the leases of all its runs in one storage call every ``lease_ms / 3``;
    when an executor dies, other executors take its executions over within ``lease_ms`` (plus
    one poll), whatever their timeout. A task whose timeout plus ``expire_leeway_ms`` is
    shorter is leased for that, without renewals. Keep it well above the longest pause of
    the event loop (a blocking call in an ``async`` task): a lease that runs out while its
    owner is stuck is taken over, and that run's outcome refused."""
    max_lease_expiries: int = _int(10, 1, MAX_LEASE_EXPIRIES_LIMIT)
    """How many times an execution's lease may expire (the process running it died, or
    stopped renewing) before it ends ``failed`` with the error type ``crashed`` instead of
    running again: a task that kills its process cannot crash executors forever. While its
    lease has expired twice or more, an execution is a suspect: each executor runs one
    suspect at a time, so a poison task stops taking healthy runs down with it."""
    background_process_interval_ms: int = _int(250, 1, MAX_INTERVAL_MS)
    """How often each background loop polls when nothing woke it earlier (at most an hour)."""
    max_concurrent_task_executions: int = _int(1_000, 1, MAX_CONCURRENCY)
    """Executions running at once on this executor (at most 100,000)."""
    max_task_threads: int = _int(DEFAULT_TASK_THREADS, 1, MAX_CONCURRENCY)
    """Sync tasks (plain functions) running at once on this executor, each in a thread of its
    own (default: as Python's thread pools, ``min(32, os.cpu_count() + 4)``; at most 100,000).
    An execution of a sync task is claimed only when a thread is free for it, so a process
    busy with CPU-bound tasks leaves the rest to the others sharing the storage. Raise it for
    sync tasks that mostly wait (blocking I/O); async tasks are not counted here, only in
    ``max_concurrent_task_executions``, which bounds both."""
    max_task_executions_per_batch: int = _int(100, 1, MAX_BATCH)
    """Executions claimed, closed or advanced per storage round trip (at most 10,000)."""
    max_children_per_task_execution: int = _int(1_000, 1, MAX_CHILDREN_LIMIT)
    """Children one ``run_parent`` may return (at most 100,000)."""
    max_serialized_input_data_size: int = _int(MIB, 1, MAX_DATA_SIZE_LIMIT)
    """Bytes of one serialized input (at most 10 MiB)."""
    max_serialized_output_data_size: int = _int(MIB, 1, MAX_DATA_SIZE_LIMIT)
    """Bytes of one serialized output (at most 10 MiB)."""
    shutdown_timeout_ms: int = _int(10_000, 0, MAX_DURATION_MS)
    """How long ``shutdown()`` waits for running executions before it stops them and gives
    their leases back (at most 10 years)."""
    loop_lag_warning_ms: int = _int(1_000, 0, MAX_INTERVAL_MS)
    """Log a WARNING, while it lasts, when the event loop is blocked longer than this (an
    async task calling blocking code), naming the running executions and the one blocking
    when it can tell; 0 turns the watchdog off (at most an hour)."""
    maintenance_interval_ms: int = _int(60_000, 0, MAX_INTERVAL_MS)
    """How often the executor asks the storage for its housekeeping, the first time one
    interval after the start; 0 turns it off (at most an hour). On PostgreSQL with the
    server's autovacuum off: a ``VACUUM (ANALYZE)`` of the executions table, by one executor
    at a time, at most once per interval across them (nothing when autovacuum is on); on
    SQLite: the free pages of deleted rows given back to the file system. Storages without
    the :class:`~durable_execution.storage.abilities.Maintenance` ability skip it."""
    interrupt_sync_tasks: bool = False
    """Whether a sync task's thread gets an exception when its execution is cancelled
    (:class:`~durable_execution.errors.DurableExecutionCancelledError`), times out
    (:class:`~durable_execution.errors.DurableExecutionTimedOutError`) or is stopped at shutdown
    (cancelled), raised inside the thread with ``PyThreadState_SetAsyncExc``. Off, a sync task
    only sees ``ctx.is_cancelled()`` and runs until it returns. Limits: the exception is raised
    between two bytecodes, so a thread blocked in a C call (``time.sleep``, a socket read, a
    lock) sees it only when that call returns; code that catches every exception can swallow
    it; and cleanup code (``finally``, ``with``) may be interrupted too. Either way the late
    result is discarded."""
    validate_on_enqueue: bool = False
    """Whether ``enqueue_task`` / ``enqueue_tasks`` validate the input of tasks that have a
    validator (``input_schema`` / ``validate_input``) before storing anything, raising
    :class:`~durable_execution.errors.InputValidationError` for an invalid one. Off, an
    invalid input is stored and its execution fails. A builder's own ``validate_on_enqueue``
    wins over this option."""
    retention: dt.timedelta | None = None
    """How long finished executions are kept: with a duration, the executor deletes in the
    background the closed trees whose root finished longer ago than that (see
    ``purge_executions``; on a fleet, one executor at a time purges). ``None`` (the
    default): kept forever. At least a second, at most 100 years."""
    serializer: Serializer = field(default_factory=JsonSerializer)
    """How inputs and outputs are stored (see :mod:`durable_execution.serialization`)."""
    logger: LoggerLike = field(default_factory=_default_logger)
    """Where the executor logs."""
    middleware: tuple[Middleware, ...] = ()
    """Hooks around each enqueue and each attempt, the first outermost (see
    :mod:`durable_execution.middleware`)."""

    def __post_init__(self) -> None:
        for option in fields(self):
            if "minimum" in option.metadata:
                check_int(
                    option.name,
                    getattr(self, option.name),
                    minimum=option.metadata["minimum"],
                    maximum=option.metadata["maximum"],
                )
        for name in ("interrupt_sync_tasks", "validate_on_enqueue"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(
                    f"Invalid option {name}={getattr(self, name)!r}: expected True or False"
                )
        retention = self.retention
        if retention is not None and (
            not isinstance(retention, dt.timedelta)
            or not dt.timedelta(seconds=1) <= retention <= MAX_RETENTION
        ):
            raise ValueError(
                f"Invalid option retention={retention!r}: expected None or a timedelta "
                "from 1 second to 100 years"
            )
        # A class passes the protocol check too (it has both methods): ask for an instance.
        if isinstance(self.serializer, type) or not isinstance(self.serializer, Serializer):
            raise ValueError(
                f"Invalid option serializer={self.serializer!r}: expected an instance with "
                "serialize() and deserialize()"
            )
        for layer in self.middleware:
            if isinstance(layer, type) or not isinstance(layer, Middleware):
                raise ValueError(
                    f"Invalid option middleware: {layer!r} is not a middleware instance (it "
                    "needs async enqueue() and attempt() hooks; subclass BaseMiddleware)"
                )
        if not isinstance(self.logger, logging.Logger | logging.LoggerAdapter):
            raise ValueError(
                f"Invalid option logger={self.logger!r}: expected a logging.Logger or LoggerAdapter"
            )
