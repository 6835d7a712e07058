"""The public view of one execution: :class:`DurableTaskExecution`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from durable_execution.attributes import decode_attributes
from durable_execution.errors import DurableExecutionErrorInfo, SerializationError
from durable_execution.serialization import Serializer
from durable_execution.status import DurableTaskExecutionStatus
from durable_execution.storage.records import ExecutionRecord

__all__ = ["DurableTaskExecution"]

OutputT_co = TypeVar("OutputT_co", covariant=True)


_UTC = dt.UTC


def _time(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, _UTC)


def _optional_time(ms: int | None, same_as: int, known: dt.datetime) -> dt.datetime | None:
    """The time of ``ms``: ``known`` when it is ``same_as`` (times of one record often are:
    started when created, or finished when last updated)."""
    if ms is None:
        return None
    return known if ms == same_as else _time(ms)


_NO_ATTRIBUTES: Mapping[str, Any] = MappingProxyType({})


def _attributes(text: str | None, execution_id: str) -> Mapping[str, Any]:
    """The attributes stored as ``text``, read-only."""
    if text is None:
        return _NO_ATTRIBUTES
    try:
        return MappingProxyType(decode_attributes(text))
    except ValueError as exc:  # JSONDecodeError, or not an object
        raise SerializationError(
            f"Cannot decode the attributes of execution {execution_id}: {exc}"
        ) from exc


def _decode(serializer: Serializer, data: str, execution_id: str, field: str) -> Any:
    """``serializer.deserialize(data)``; whatever it raises becomes a
    :class:`SerializationError` naming the execution and the field."""
    try:
        return serializer.deserialize(data)
    except Exception as exc:
        raise SerializationError(
            f"Cannot deserialize the {field} of execution {execution_id}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


@dataclass(frozen=True, slots=True)
class DurableTaskExecution(Generic[OutputT_co]):
    """A snapshot of one execution, as stored when it was read.

    ``DurableTaskExecution[Out]``: ``output``, an ``Out`` (the task's output type), is set
    when ``status`` is ``completed``; ``error`` for every other finished status (and, while
    ``ready`` for a retry, the previous attempt's error). ``attributes`` is the execution's
    metadata, read-only (an empty mapping when it has none). ``lease_expiries`` counts the
    times the execution's lease expired: the executor running it died or stopped responding
    (at ``max_lease_expiries`` it ends ``failed`` with the error type ``crashed``). Times are
    timezone-aware UTC datetimes, ``None`` where not applicable.

    ``unserved_task_ids`` is ``None`` unless the read asked for it (``get_execution(...,
    check_workers=True)``): then the ids of the tasks that no live executor registered and
    that keep this execution waiting (its own while it is ready or waits for its children, and
    those of its unfinished descendants), ``()`` when there is none. See :attr:`unserved`.
    """

    task_id: str
    execution_id: str
    status: DurableTaskExecutionStatus
    input: Any
    output: OutputT_co | None
    error: DurableExecutionErrorInfo | None
    retry_attempts: int
    is_closed: bool
    parent_execution_id: str | None
    root_execution_id: str | None
    child_execution_ids: tuple[str, ...]
    completion_execution_id: str | None
    is_completion: bool
    priority: int
    idempotency_key: str | None
    attributes: Mapping[str, Any]
    created_at: dt.datetime
    updated_at: dt.datetime
    start_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    expires_at: dt.datetime | None
    lease_expiries: int = 0
    unserved_task_ids: tuple[str, ...] | None = None

    @property
    def unserved(self) -> bool | None:
        """Whether the execution waits for a task that no live executor registered (it will
        not move until one that registered it runs); ``None`` when the read did not check
        (see :attr:`unserved_task_ids`)."""
        return None if self.unserved_task_ids is None else bool(self.unserved_task_ids)

    @property
    def is_finalize(self) -> bool:
        """Former name of :attr:`is_completion`, kept for existing code."""
        return self.is_completion

    @property
    def finalize_execution_id(self) -> str | None:
        """Former name of :attr:`completion_execution_id`, kept for existing code."""
        return self.completion_execution_id

    @property
    def is_finished(self) -> bool:
        """True once the execution reached one of the six finished statuses."""
        return self.status.is_finished

    @classmethod
    def from_record(
        cls, record: ExecutionRecord, serializer: Serializer
    ) -> DurableTaskExecution[Any]:
        """Decode a storage record with ``serializer``.

        Raises :class:`~durable_execution.errors.SerializationError`, naming the execution
        and the field, when the serializer cannot decode its input or output.
        """
        execution_id = record.execution_id
        output = None
        if record.output is not None and record.status is DurableTaskExecutionStatus.COMPLETED:
            output = _decode(serializer, record.output, execution_id, "output")
        created_ms, updated_ms = record.created_at_ms, record.updated_at_ms
        created_at = _time(created_ms)
        updated_at = created_at if updated_ms == created_ms else _time(updated_ms)
        execution: DurableTaskExecution[Any] = object.__new__(cls)
        # In the order of the fields (a test compares with the dataclass's own __init__)
        values = (
            record.task_id,
            execution_id,
            record.status,
            _decode(serializer, record.input, execution_id, "input"),
            output,
            record.error,
            record.retry_attempts,
            record.is_closed,
            record.parent_execution_id,
            record.root_execution_id,
            record.child_execution_ids,
            record.completion_execution_id,
            record.is_completion,
            record.priority,
            record.idempotency_key,
            _attributes(record.attributes, execution_id),
            created_at,
            updated_at,
            _optional_time(record.start_at_ms, created_ms, created_at),
            _optional_time(record.started_at_ms, created_ms, created_at),
            _optional_time(record.finished_at_ms, updated_ms, updated_at),
            _optional_time(record.expires_at_ms, updated_ms, updated_at),
            record.lease_expiries,
            None,
        )
        _fill(execution, values)
        return execution


# The frozen dataclass's __init__ sets each of its 24 fields through object.__setattr__;
# from_record, on the path of every read and wait, fills the slots directly instead, one
# call per slot written out (as dataclasses writes out __init__): a third of the cost of
# __init__, two thirds of a loop over the setters. Nothing else is skipped: the class has no
# __post_init__.
_FIELD_SETTERS: tuple[Callable[[object, Any], None], ...] = tuple(
    getattr(DurableTaskExecution, field.name).__set__ for field in fields(DurableTaskExecution)
)


def _make_fill() -> Callable[[object, tuple[Any, ...]], None]:
    names = {f"set_{i}": setter for i, setter in enumerate(_FIELD_SETTERS)}
    body = "".join(f"    set_{i}(execution, values[{i}])\n" for i in range(len(names)))
    source = f"def fill(execution, values):\n{body}"
    exec(compile(source, "<from_record fill>", "exec"), names)  # our own text, fixed
    fill: Callable[[object, tuple[Any, ...]], None] = names["fill"]
    return fill


_fill = _make_fill()
