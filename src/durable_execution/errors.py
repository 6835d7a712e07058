"""Errors raised by durable_execution, and the error data stored with executions.

Every exception the library raises at run time derives from :class:`DurableError`; several
also derive from the built-in exception a Python programmer would reach for (shown after
"also"), so ``except LookupError`` or ``except TimeoutError`` keep working. The tree::

    DurableError
    ├── DurableExecutionError           a task run failed; raise it from ``run`` (is_retryable)
    │   ├── DurableExecutionTimedOutError   the attempt ran past ``timeout_ms``
    │   └── DurableExecutionCancelledError  the execution was cancelled
    ├── DurableExecutionNotFoundError   no execution has that id (also a LookupError)
    ├── ExecutorShutdownError           the executor was shut down (also a RuntimeError)
    ├── SerializationError              a value cannot be (de)serialized (also a ValueError)
    │   └── DataTooLargeError               a serialized value is over its size limit
    ├── DurableStorageError             the storage failed (is_transient; the driver's error
    │   │                                   is the __cause__)
    │   ├── StorageSchemaError              the database is corrupt, foreign or too new
    │   └── DuplicateExecutionError         an execution id is already stored
    │       └── DuplicateUniqueIdError          a sleeping task's unique id is taken
    ├── UnsupportedByStorageError       the storage lacks an optional ability (also a
    │                                       NotImplementedError); names both
    ├── IdempotencyConflictError        an idempotency key reused with another task or input
    │                                       (also a ValueError)
    ├── ExecutionNotRetryableError      retry_execution refused: not a root, not finished, or
    │                                       completed (also a ValueError; ``reason`` says which)
    ├── InputValidationError            an input refused at enqueue (also a ValueError)
    └── WaitTimeoutError                a wait outlived its timeout (also a TimeoutError)

Mistakes in the code that calls the library (an invalid option, a task that is not
registered, an argument of the wrong type) raise plain :class:`ValueError` or
:class:`TypeError` at the call, as Python libraries do; they are not failures to handle.

Errors of task runs are stored as data (:class:`DurableExecutionErrorInfo`), never pickled.
"""

from __future__ import annotations

import enum
import json
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DataTooLargeError",
    "DuplicateExecutionError",
    "DuplicateUniqueIdError",
    "DurableError",
    "DurableExecutionCancelledError",
    "DurableExecutionError",
    "DurableExecutionErrorInfo",
    "DurableExecutionErrorType",
    "DurableExecutionNotFoundError",
    "DurableExecutionTimedOutError",
    "DurableStorageError",
    "ExecutionNotRetryableError",
    "ExecutorShutdownError",
    "IdempotencyConflictError",
    "InputValidationError",
    "SerializationError",
    "StorageSchemaError",
    "UnsupportedByStorageError",
    "WaitTimeoutError",
]

_MAX_STORED_MESSAGE = 16_384
_MAX_STORED_TRACEBACK = 8_192


class DurableExecutionErrorType(enum.StrEnum):
    """What kind of failure an execution's stored error describes.

    ``not_found`` is no longer written (a missing execution is not a run failure); stored
    errors of that type still read back. ``crashed`` is written by the storage, never by a
    run: the execution's lease expired ``max_lease_expiries`` times (the process running it
    kept dying), so it was failed instead of being run again.
    """

    GENERIC = "generic"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    NOT_FOUND = "not_found"
    CRASHED = "crashed"


class DurableError(Exception):
    """The root of every exception durable_execution raises at run time."""


class DurableExecutionError(DurableError):
    """A task run failed.

    Raise it from ``run`` with ``is_retryable=False`` to fail the execution at once, without
    using the remaining retry attempts. Any other exception raised by ``run`` is retryable.
    """

    error_type = DurableExecutionErrorType.GENERIC

    def __init__(self, message: str, *, is_retryable: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.is_retryable = is_retryable

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, is_retryable={self.is_retryable})"


class DurableExecutionTimedOutError(DurableExecutionError):
    """An attempt ran longer than its task's ``timeout_ms``."""

    error_type = DurableExecutionErrorType.TIMED_OUT

    def __init__(self, message: str = "Task timed out", *, is_retryable: bool = True) -> None:
        super().__init__(message, is_retryable=is_retryable)


class DurableExecutionCancelledError(DurableExecutionError):
    """The execution was cancelled; it is never retried."""

    error_type = DurableExecutionErrorType.CANCELLED

    def __init__(self, message: str = "Task cancelled", *, is_retryable: bool = False) -> None:
        super().__init__(message, is_retryable=is_retryable)


class DurableExecutionNotFoundError(DurableError, LookupError):
    """No execution with the given id (or unique id) exists in the storage."""

    def __init__(self, message: str = "Task execution not found") -> None:
        super().__init__(message)
        self.message = message


class DurableStorageError(DurableError):
    """The storage failed to perform an operation. The driver's error is the ``__cause__``.

    ``is_transient`` is true when trying again later may succeed (a dropped connection, a
    database restarting, a lock held too long); the executor then retries an enqueue a few
    times before it gives up. A failed operation changed nothing, except that a transient
    failure of a commit may leave it unknown whether the commit happened.
    """

    def __init__(self, message: str, *, is_transient: bool = False) -> None:
        super().__init__(message)
        self.is_transient = is_transient


class StorageSchemaError(DurableStorageError):
    """The database is not usable: corrupt, not a database, foreign, or from a newer version."""


class DuplicateExecutionError(DurableStorageError):
    """An execution with the same id is already stored."""


class DuplicateUniqueIdError(DuplicateExecutionError):
    """A sleeping task already has an unfinished (sleeping) execution with this unique id.

    Raised by an enqueue of a root; a parent that returns such a child fails with a
    non-retryable error instead. Once that execution finished, its unique id may be used
    again.
    """


class ExecutionNotRetryableError(DurableError, ValueError):
    """``retry_execution`` refused an execution, changing nothing.

    ``reason`` says why: ``"not_root"`` (retry its root instead: a tree is retried whole),
    ``"unfinished"`` (it still runs or waits), ``"completed"`` (nothing to retry), or
    ``"settling"`` (it finished, but some of its descendants are still being cancelled or
    closed: try again in a moment).
    """

    def __init__(self, message: str, *, execution_id: str, reason: str) -> None:
        super().__init__(message)
        self.message = message
        self.execution_id = execution_id
        self.reason = reason


class ExecutorShutdownError(DurableError, RuntimeError):
    """The executor was shut down: it no longer accepts tasks, enqueues or handles."""


class SerializationError(DurableError, ValueError):
    """A value could not be serialized or deserialized."""


class DataTooLargeError(SerializationError):
    """A serialized value is larger than the configured limit."""


class UnsupportedByStorageError(DurableError, NotImplementedError):
    """The storage lacks an optional ability that the call needs.

    ``storage`` is the storage's ``repr`` and ``ability`` the name of the ability's protocol
    (see :mod:`durable_execution.storage.abilities`).
    """

    def __init__(self, storage: object, ability: str, action: str) -> None:
        super().__init__(
            f"{storage!r} cannot {action}: it does not have the {ability} ability of "
            "durable_execution.storage.abilities"
        )
        self.storage = repr(storage)
        self.ability = ability


class IdempotencyConflictError(DurableError, ValueError):
    """An idempotency key was reused for another task or another input.

    ``execution_id`` is the execution already stored under the key.
    """

    def __init__(self, message: str, *, idempotency_key: str, execution_id: str) -> None:
        super().__init__(message)
        self.idempotency_key = idempotency_key
        self.execution_id = execution_id


class InputValidationError(DurableError, ValueError):
    """An input was refused by its task's validation at enqueue (nothing was stored).

    The validator's own exception (a pydantic ``ValidationError``, say) is the ``__cause__``.
    """

    def __init__(self, message: str, *, task_id: str) -> None:
        super().__init__(message)
        self.task_id = task_id


class WaitTimeoutError(DurableError, TimeoutError):
    """A wait for executions outlived its ``timeout``; the executions carry on."""


def _text(value: object) -> str:
    """``str(value)``, even for a message that is not a string or whose ``__str__`` raises."""
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__name__} whose str() failed>"


@dataclass(frozen=True, slots=True)
class DurableExecutionErrorInfo:
    """A failure as it is stored with an execution: plain data, safe to read from any process.

    ``exception_type`` is the qualified name of the Python exception that caused it, when there
    was one, and ``traceback`` its formatted traceback (truncated), for debugging.
    """

    message: str
    error_type: DurableExecutionErrorType = DurableExecutionErrorType.GENERIC
    is_retryable: bool = True
    exception_type: str | None = None
    traceback: str | None = None

    @classmethod
    def from_exception(cls, exc: BaseException) -> DurableExecutionErrorInfo:
        """Describe ``exc``; a :class:`DurableExecutionError` keeps its type and retry flag."""
        if isinstance(exc, DurableExecutionError):
            message, error_type = _text(exc.message), exc.error_type
            retryable = bool(exc.is_retryable)
        else:
            message = _text(exc) or type(exc).__name__
            error_type, retryable = DurableExecutionErrorType.GENERIC, True
        tb = "".join(traceback.format_exception(exc))[-_MAX_STORED_TRACEBACK:]
        return cls(
            message=message[:_MAX_STORED_MESSAGE],
            error_type=error_type,
            is_retryable=retryable,
            exception_type=f"{type(exc).__module__}.{type(exc).__qualname__}",
            traceback=tb,
        )

    def to_exception(self) -> DurableExecutionError:
        """The matching :class:`DurableExecutionError` subclass, for callers that want to raise."""
        cls: type[DurableExecutionError] = {
            DurableExecutionErrorType.TIMED_OUT: DurableExecutionTimedOutError,
            DurableExecutionErrorType.CANCELLED: DurableExecutionCancelledError,
        }.get(self.error_type, DurableExecutionError)
        return cls(self.message, is_retryable=self.is_retryable)

    def to_dict(self, *, with_traceback: bool = True) -> dict[str, Any]:
        """This error as a plain dict of JSON values (``traceback`` left out when
        ``with_traceback`` is false, or when there is none)."""
        data: dict[str, Any] = {
            "message": self.message,
            "error_type": self.error_type.value,
            "is_retryable": self.is_retryable,
        }
        if self.exception_type is not None:
            data["exception_type"] = self.exception_type
        if self.traceback is not None and with_traceback:
            data["traceback"] = self.traceback
        return data

    def to_json(self) -> str:
        """The storage form of this error (a small JSON object)."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> DurableExecutionErrorInfo:
        """Parse the storage form written by :meth:`to_json`."""
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DurableExecutionErrorInfo:
        """Rebuild an error from :meth:`to_dict`."""
        return cls(
            message=str(data["message"]),
            error_type=DurableExecutionErrorType(data.get("error_type", "generic")),
            is_retryable=bool(data.get("is_retryable", True)),
            exception_type=data.get("exception_type"),
            traceback=data.get("traceback"),
        )
