"""Sleeping tasks on the executor's side: the unique id a sleeping execution is inserted
with, and what a wake-up writes (the storage's
:class:`~durable_execution.storage.abilities.SleepingExecutions` ability does the rest)."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from durable_execution.errors import (
    DuplicateUniqueIdError,
    DurableExecutionError,
    DurableExecutionErrorInfo,
)
from durable_execution.serialization import Serializer, serialize_checked
from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.records import ExecutionOutcome, NewExecution
from durable_execution.task import DurableTask, TaskKind

__all__ = [
    "MAX_UNIQUE_ID_LENGTH",
    "WakeUpStatus",
    "as_sleeping",
    "check_sleeping_task",
    "check_unique_id",
    "duplicate_child_outcome",
    "wakeup_values",
]

MAX_UNIQUE_ID_LENGTH = 1_024
"""The longest unique id of a sleeping execution, in characters."""

WakeUpStatus = Literal["completed", "failed"]


def check_unique_id(unique_id: object, where: str) -> str:
    """``unique_id`` if it is a valid unique id (a non-empty ``str`` of at most
    :data:`MAX_UNIQUE_ID_LENGTH` characters); else :class:`ValueError` naming ``where``."""
    if not isinstance(unique_id, str) or not 0 < len(unique_id) <= MAX_UNIQUE_ID_LENGTH:
        raise ValueError(
            f"{where}: the unique id of a sleeping task execution is a non-empty str of at "
            f"most {MAX_UNIQUE_ID_LENGTH} characters, got {unique_id!r}"
        )
    return unique_id


def check_sleeping_task(task: object) -> DurableTask[Any, Any]:
    """``task`` if it is a sleeping task; else :class:`ValueError`."""
    if not isinstance(task, DurableTask) or task.kind is not TaskKind.SLEEPING:
        raise ValueError(f"Expected a sleeping task (executor.sleeping_task), got {task!r}")
    return task


def as_sleeping(new: NewExecution, task: DurableTask[Any, Any], unique_id: str) -> NewExecution:
    """``new``, an execution of the sleeping ``task``, inserted sleeping under ``unique_id``
    until ``task``'s timeout."""
    return dataclasses.replace(
        new, unique_id=unique_id, sleep_timeout_ms=task.options.timeout_ms, claimed_by=None
    )


def wakeup_values(
    status: str,
    output: Any,
    error: BaseException | None,
    serializer: Serializer,
    max_output_size: int,
    task_id: str,
) -> tuple[S, str | None, DurableExecutionErrorInfo | None]:
    """The status, stored output and stored error a wake-up writes; :class:`ValueError` for
    a status other than ``completed`` (with an output, no error) or ``failed`` (with an
    error, no output)."""
    if status == S.COMPLETED.value:
        if error is not None:
            raise ValueError("A wake-up with status='completed' takes an output, not an error")
        data = serialize_checked(
            serializer, output, limit=max_output_size, what=f"Output of sleeping task {task_id}"
        )
        return S.COMPLETED, data, None
    if status == S.FAILED.value:
        if output is not None:
            raise ValueError("A wake-up with status='failed' takes an error, not an output")
        if not isinstance(error, BaseException):
            raise ValueError(
                "A wake-up with status='failed' needs error=DurableExecutionError(...) "
                f"(or another exception), got {error!r}"
            )
        return S.FAILED, None, DurableExecutionErrorInfo.from_exception(error)
    raise ValueError(f"A wake-up's status is 'completed' or 'failed', got {status!r}")


def duplicate_child_outcome(
    outcome: ExecutionOutcome, exc: DuplicateUniqueIdError
) -> ExecutionOutcome:
    """What a parent's outcome becomes when one of its sleeping children's unique id is taken:
    the parent fails, non-retryable, naming the id (no child is inserted)."""
    sleeping = [f"{c.task_id} {c.unique_id!r}" for c in outcome.inserted() if c.unique_id]
    which = sleeping[0] if len(sleeping) == 1 else "one of " + ", ".join(sleeping)
    message = (
        f"Cannot create the children of execution {outcome.execution_id}: the sleeping task "
        f"execution {which} duplicates the unique id of an unfinished execution of that "
        f"task ({exc})"
    )
    error = DurableExecutionErrorInfo.from_exception(
        DurableExecutionError(message, is_retryable=False)
    )
    return ExecutionOutcome(
        execution_id=outcome.execution_id,
        lease_token=outcome.lease_token,
        expected_status=outcome.expected_status,
        status=S.FAILED,
        error=dataclasses.replace(error, traceback=None),
    )
