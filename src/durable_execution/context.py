"""What a running task sees: :class:`TaskContext`, and the value a completion task receives."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from durable_execution.attributes import decode_attributes
from durable_execution.errors import DurableExecutionErrorInfo
from durable_execution.status import DurableTaskExecutionStatus

__all__ = ["ChildTaskOutput", "ChildTaskResult", "OnRunAndChildrenCompleteInput", "TaskContext"]

InputT_co = TypeVar("InputT_co", covariant=True)
OutputT_co = TypeVar("OutputT_co", covariant=True)

_EVENT_LOCK = threading.Lock()


class TaskContext:
    """The context passed to ``run`` / ``run_parent`` as their first argument.

    Stopping early: an async task receives :class:`asyncio.CancelledError` when its execution is
    cancelled or times out. A sync task runs in a worker thread (a daemon thread: it never keeps
    the process alive), so it should poll :meth:`is_cancelled` (or wait on
    :attr:`cancel_event`) in long loops; its late result is ignored either way. The executor
    option ``interrupt_sync_tasks`` also raises an exception inside the thread.
    :meth:`is_shutting_down` / :attr:`shutdown_event` tell that the executor is shutting down
    and waits (bounded) for running tasks to return.
    """

    __slots__ = (
        "_attributes",
        "_attributes_text",
        "_cancel_event",
        "_cancelled",
        "attempt",
        "execution_id",
        "parent_execution_id",
        "prev_error",
        "root_execution_id",
        "shutdown_event",
        "task_id",
    )

    def __init__(
        self,
        *,
        task_id: str,
        execution_id: str,
        attempt: int,
        prev_error: DurableExecutionErrorInfo | None,
        root_execution_id: str | None,
        parent_execution_id: str | None,
        shutdown_event: threading.Event,
        attributes: str | None = None,
    ) -> None:
        self.task_id = task_id
        self.execution_id = execution_id
        self.attempt = attempt
        self.prev_error = prev_error
        self.root_execution_id = root_execution_id
        self.parent_execution_id = parent_execution_id
        self.shutdown_event = shutdown_event
        self._cancelled = False
        self._cancel_event: threading.Event | None = None
        self._attributes_text = attributes
        self._attributes: Mapping[str, Any] | None = None

    @property
    def attributes(self) -> Mapping[str, Any]:
        """The execution's attributes (read-only; its children inherit them)."""
        if self._attributes is None:
            self._attributes = MappingProxyType(decode_attributes(self._attributes_text))
        return self._attributes

    def is_cancelled(self) -> bool:
        """True once this attempt should stop: the execution was cancelled or timed out."""
        return self._cancelled

    @property
    def cancel_event(self) -> threading.Event:
        """A :class:`threading.Event` set when this attempt should stop (for ``wait(timeout)``)."""
        event = self._cancel_event
        if event is None:
            with _EVENT_LOCK:
                event = self._cancel_event
                if event is None:
                    event = self._cancel_event = threading.Event()
            # Published before reading the flag, so a concurrent request_cancel is never lost.
            if self._cancelled:
                event.set()
        return event

    def request_cancel(self) -> None:
        """Ask this attempt to stop (used by the executor on cancellation and timeout)."""
        self._cancelled = True
        event = self._cancel_event
        if event is not None:
            event.set()

    def is_shutting_down(self) -> bool:
        """True once the executor running this task started shutting down."""
        return self.shutdown_event.is_set()

    def __repr__(self) -> str:
        return (
            f"TaskContext(task_id={self.task_id!r}, execution_id={self.execution_id!r}, "
            f"attempt={self.attempt})"
        )


@dataclass(frozen=True, slots=True)
class ChildTaskOutput:
    """The output of one child, as the parent's completion task receives it."""

    task_id: str
    execution_id: str
    output: Any


@dataclass(frozen=True, slots=True)
class ChildTaskResult:
    """How one child ended, as the parent's completion task receives it (``value.children``).

    ``status`` is ``completed`` for every child under the ``fail_fast`` children policy;
    under ``all_settled`` it may be any finished status. ``output`` is the child's output when
    it completed (else ``None``), ``error`` its error when it did not (without the traceback,
    which stays with the child's execution).
    """

    task_id: str
    execution_id: str
    status: DurableTaskExecutionStatus
    output: Any = None
    error: DurableExecutionErrorInfo | None = None


@dataclass(frozen=True, slots=True)
class OnRunAndChildrenCompleteInput(Generic[InputT_co, OutputT_co]):
    """What ``on_run_and_children_complete`` receives (the ``value`` of its ``run(ctx, value)``).

    ``OnRunAndChildrenCompleteInput[In, Out]``: ``input`` is the parent's input (``In``; when
    the parent validates its input, with ``input_schema`` or ``validate_input``, the validated
    value, such as the pydantic model), ``output`` is ``run_parent``'s output (``Out``),
    ``children_outputs`` the children's outputs and ``children`` how each child ended (its
    status, output and error), both in the order the children were returned.
    """

    input: InputT_co
    output: OutputT_co
    children_outputs: list[ChildTaskOutput] = field(default_factory=list)
    children: list[ChildTaskResult] = field(default_factory=list)
