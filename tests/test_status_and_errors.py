"""Statuses and their transitions, the error tree and stored error data, execution ids."""

from __future__ import annotations

import json
import re
import time

import pytest

from durable_execution.errors import (
    DataTooLargeError,
    DuplicateExecutionError,
    DurableError,
    DurableExecutionCancelledError,
    DurableExecutionError,
    DurableExecutionErrorInfo,
    DurableExecutionErrorType,
    DurableExecutionNotFoundError,
    DurableExecutionTimedOutError,
    DurableStorageError,
    ExecutorShutdownError,
    IdempotencyConflictError,
    InputValidationError,
    SerializationError,
    StorageSchemaError,
    UnsupportedByStorageError,
    WaitTimeoutError,
)
from durable_execution.ids import new_execution_id, new_executor_id
from durable_execution.status import (
    ALLOWED_TRANSITIONS,
    FINISHED_STATUSES,
    DurableTaskExecutionStatus,
    is_transition_allowed,
)

S = DurableTaskExecutionStatus
ErrorType = DurableExecutionErrorType

# -- statuses --------------------------------------------------------------------------------


def test_status_values_are_exactly_the_documented_strings() -> None:
    assert [status.value for status in S] == [
        "ready",
        "running",
        "failed",
        "timed_out",
        "waiting_for_children",
        "children_failed",
        "waiting_for_on_run_and_children_complete",
        "on_run_and_children_complete_failed",
        "completed",
        "cancelled",
        "sleeping",
    ]


def test_status_is_a_str_enum() -> None:
    assert S("waiting_for_children") is S.WAITING_FOR_CHILDREN
    assert isinstance(S.COMPLETED, str)
    assert str(S.COMPLETED) == "completed"
    assert f"{S.CHILDREN_FAILED}" == "children_failed"
    assert json.dumps(S.TIMED_OUT) == '"timed_out"'


def test_finished_statuses() -> None:
    assert {
        S.COMPLETED,
        S.FAILED,
        S.TIMED_OUT,
        S.CHILDREN_FAILED,
        S.ON_RUN_AND_CHILDREN_COMPLETE_FAILED,
        S.CANCELLED,
    } == FINISHED_STATUSES
    for status in S:
        assert status.is_finished is (status in FINISHED_STATUSES)


EXPECTED_TRANSITIONS: dict[S, set[S]] = {
    # claim, or cancel before it runs
    S.READY: {S.RUNNING, S.CANCELLED},
    # first diagram (run failed / timed out / completed), the second one's two branches out of
    # "run function completed", a retry or a lost lease back to ready, and cancellation
    S.RUNNING: {
        S.READY,
        S.FAILED,
        S.TIMED_OUT,
        S.COMPLETED,
        S.WAITING_FOR_CHILDREN,
        S.WAITING_FOR_ON_RUN_AND_CHILDREN_COMPLETE,
        S.CANCELLED,
    },
    # one or more children failed / all completed (with or without a completion task); failed
    # when the children's outputs cannot be combined
    S.WAITING_FOR_CHILDREN: {
        S.CHILDREN_FAILED,
        S.COMPLETED,
        S.WAITING_FOR_ON_RUN_AND_CHILDREN_COMPLETE,
        S.FAILED,
        S.CANCELLED,
    },
    S.WAITING_FOR_ON_RUN_AND_CHILDREN_COMPLETE: {
        S.COMPLETED,
        S.ON_RUN_AND_CHILDREN_COMPLETE_FAILED,
        S.CANCELLED,
    },
    # woken up (completed or failed), not woken up within its timeout, or cancelled
    S.SLEEPING: {S.COMPLETED, S.FAILED, S.TIMED_OUT, S.CANCELLED},
    S.COMPLETED: set(),
    S.FAILED: set(),
    S.TIMED_OUT: set(),
    S.CHILDREN_FAILED: set(),
    S.ON_RUN_AND_CHILDREN_COMPLETE_FAILED: set(),
    S.CANCELLED: set(),
}


def test_allowed_transitions_are_exactly_the_diagrams() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(S)
    assert {status: set(targets) for status, targets in ALLOWED_TRANSITIONS.items()} == (
        EXPECTED_TRANSITIONS
    )


@pytest.mark.parametrize("status", sorted(FINISHED_STATUSES))
def test_finished_statuses_have_no_way_out(status: S) -> None:
    assert ALLOWED_TRANSITIONS[status] == frozenset()
    assert not any(is_transition_allowed(status, target) for target in S)


@pytest.mark.parametrize("status", sorted(set(S) - FINISHED_STATUSES))
def test_unfinished_statuses_can_be_cancelled(status: S) -> None:
    assert is_transition_allowed(status, S.CANCELLED)
    assert not is_transition_allowed(status, status)


def test_every_finished_status_is_reachable() -> None:
    reachable = set().union(*ALLOWED_TRANSITIONS.values())
    assert reachable >= FINISHED_STATUSES
    assert S.READY in reachable  # retries and lost leases
    assert S.READY not in ALLOWED_TRANSITIONS[S.WAITING_FOR_CHILDREN]


def test_is_transition_allowed_agrees_with_the_table() -> None:
    for current in S:
        for new in S:
            assert is_transition_allowed(current, new) is (new in EXPECTED_TRANSITIONS[current])


# -- the error tree --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "parent"),
    [
        (DurableExecutionTimedOutError, DurableExecutionError),
        (DurableExecutionCancelledError, DurableExecutionError),
        (DurableExecutionError, DurableError),
        (DurableExecutionNotFoundError, DurableError),
        (DurableExecutionNotFoundError, LookupError),
        (StorageSchemaError, DurableStorageError),
        (DuplicateExecutionError, DurableStorageError),
        (DurableStorageError, DurableError),
        (ExecutorShutdownError, DurableError),
        (ExecutorShutdownError, RuntimeError),
        (SerializationError, DurableError),
        (SerializationError, ValueError),
        (DataTooLargeError, SerializationError),
        (UnsupportedByStorageError, DurableError),
        (UnsupportedByStorageError, NotImplementedError),
        (IdempotencyConflictError, DurableError),
        (IdempotencyConflictError, ValueError),
        (InputValidationError, DurableError),
        (InputValidationError, ValueError),
        (WaitTimeoutError, DurableError),
        (WaitTimeoutError, TimeoutError),
        (DurableError, Exception),
    ],
)
def test_error_tree(error: type[Exception], parent: type[Exception]) -> None:
    assert issubclass(error, parent)


def test_storage_and_task_errors_are_separate_branches() -> None:
    assert not issubclass(DurableStorageError, DurableExecutionError)
    assert not issubclass(DurableExecutionError, DurableStorageError)
    assert not issubclass(SerializationError, DurableExecutionError)


def test_not_found_is_a_lookup_failure_not_a_run_failure() -> None:
    assert not issubclass(DurableExecutionNotFoundError, DurableExecutionError)
    error = DurableExecutionNotFoundError()
    assert error.message == str(error) == "Task execution not found"
    assert str(DurableExecutionNotFoundError("No execution te_1")) == "No execution te_1"
    # An error of this type written by an earlier release reads back as a plain run failure.
    old = DurableExecutionErrorInfo(message="m", error_type=ErrorType.NOT_FOUND).to_exception()
    assert type(old) is DurableExecutionError


def test_every_public_exception_derives_from_durable_error() -> None:
    import durable_execution.errors as errors

    classes = [getattr(errors, name) for name in errors.__all__]
    exceptions = [c for c in classes if isinstance(c, type) and issubclass(c, BaseException)]
    assert len(exceptions) == 17
    assert all(issubclass(c, DurableError) for c in exceptions)


def test_unsupported_by_storage_names_the_storage_and_the_ability() -> None:
    error = UnsupportedByStorageError("MyStorage()", "Listing", "list executions")
    assert str(error) == (
        "'MyStorage()' cannot list executions: it does not have the Listing ability of "
        "durable_execution.storage.abilities"
    )
    assert (error.storage, error.ability) == ("'MyStorage()'", "Listing")


@pytest.mark.parametrize(
    ("cls", "error_type", "default_message", "default_retryable"),
    [
        (DurableExecutionTimedOutError, ErrorType.TIMED_OUT, "Task timed out", True),
        (DurableExecutionCancelledError, ErrorType.CANCELLED, "Task cancelled", False),
    ],
)
def test_subclass_defaults(
    cls: type[DurableExecutionError],
    error_type: ErrorType,
    default_message: str,
    default_retryable: bool,
) -> None:
    error = cls()  # type: ignore[call-arg]
    assert error.error_type is error_type
    assert error.message == default_message == str(error)
    assert error.is_retryable is default_retryable


def test_durable_execution_error_message_and_flag() -> None:
    error = DurableExecutionError("nope", is_retryable=False)
    assert (error.message, str(error), error.is_retryable) == ("nope", "nope", False)
    assert error.error_type is ErrorType.GENERIC
    assert DurableExecutionError("again").is_retryable is True
    assert repr(error) == "DurableExecutionError('nope', is_retryable=False)"


def test_error_flag_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        DurableExecutionError("x", False)  # type: ignore[call-arg]


# -- DurableExecutionErrorInfo ---------------------------------------------------------------


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_info_from_plain_exception_is_retryable() -> None:
    info = DurableExecutionErrorInfo.from_exception(_raised(KeyError("missing")))
    assert info.message == "'missing'"
    assert info.error_type is ErrorType.GENERIC
    assert info.is_retryable is True
    assert info.exception_type == "builtins.KeyError"
    assert info.traceback is not None
    assert "KeyError" in info.traceback
    assert "_raised" in info.traceback


def test_info_from_exception_without_message_uses_its_type() -> None:
    info = DurableExecutionErrorInfo.from_exception(RuntimeError())
    assert info.message == "RuntimeError"


def test_info_from_error_with_a_non_string_message() -> None:
    info = DurableExecutionErrorInfo.from_exception(DurableExecutionError({"code": 42}))  # type: ignore[arg-type]
    assert info.message == "{'code': 42}"


def test_info_from_exception_whose_str_raises() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    info = DurableExecutionErrorInfo.from_exception(Unprintable())
    assert info.message == "<Unprintable whose str() failed>"
    assert info.is_retryable is True
    assert info.exception_type is not None
    assert info.exception_type.endswith("Unprintable")


def test_info_from_non_retryable_error() -> None:
    info = DurableExecutionErrorInfo.from_exception(
        DurableExecutionError("give up", is_retryable=False)
    )
    assert (info.message, info.error_type, info.is_retryable) == (
        "give up",
        ErrorType.GENERIC,
        False,
    )
    assert info.exception_type == "durable_execution.errors.DurableExecutionError"


@pytest.mark.parametrize(
    ("exc", "error_type", "retryable"),
    [
        (DurableExecutionTimedOutError("slow"), ErrorType.TIMED_OUT, True),
        (DurableExecutionTimedOutError("slow", is_retryable=False), ErrorType.TIMED_OUT, False),
        (DurableExecutionCancelledError("stop"), ErrorType.CANCELLED, False),
    ],
)
def test_info_from_subclasses_keeps_type_and_flag(
    exc: DurableExecutionError, error_type: ErrorType, retryable: bool
) -> None:
    info = DurableExecutionErrorInfo.from_exception(exc)
    assert info.error_type is error_type
    assert info.is_retryable is retryable
    assert info.message == exc.message
    assert info.exception_type == f"durable_execution.errors.{type(exc).__qualname__}"


def test_info_from_user_subclass_names_it() -> None:
    class PaymentDeclined(DurableExecutionError):
        pass

    info = DurableExecutionErrorInfo.from_exception(PaymentDeclined("declined"))
    assert info.error_type is ErrorType.GENERIC
    assert info.exception_type is not None
    assert info.exception_type.endswith("PaymentDeclined")


def test_info_truncates_huge_messages() -> None:
    info = DurableExecutionErrorInfo.from_exception(ValueError("x" * 100_000))
    assert 0 < len(info.message) < 100_000
    assert info.traceback is not None
    assert len(info.traceback) < 100_000


@pytest.mark.parametrize(
    "info",
    [
        DurableExecutionErrorInfo(message="plain"),
        DurableExecutionErrorInfo(
            message='é ✓ \n "quoted"',
            error_type=ErrorType.TIMED_OUT,
            is_retryable=False,
            exception_type="pkg.Error",
            traceback="Traceback...\n",
        ),
        DurableExecutionErrorInfo.from_exception(_raised(ZeroDivisionError("division by zero"))),
        DurableExecutionErrorInfo.from_exception(DurableExecutionCancelledError()),
    ],
    ids=["minimal", "full", "from exception", "cancelled"],
)
def test_info_json_round_trip(info: DurableExecutionErrorInfo) -> None:
    text = info.to_json()
    assert isinstance(json.loads(text), dict)
    assert DurableExecutionErrorInfo.from_json(text) == info


def test_info_json_is_plain_data() -> None:
    data = json.loads(DurableExecutionErrorInfo(message="m", is_retryable=False).to_json())
    assert data == {"message": "m", "error_type": "generic", "is_retryable": False}


def test_info_from_minimal_json_uses_defaults() -> None:
    info = DurableExecutionErrorInfo.from_json('{"message": "m"}')
    assert info == DurableExecutionErrorInfo(message="m")


@pytest.mark.parametrize(
    ("error_type", "cls"),
    [
        (ErrorType.GENERIC, DurableExecutionError),
        (ErrorType.TIMED_OUT, DurableExecutionTimedOutError),
        (ErrorType.CANCELLED, DurableExecutionCancelledError),
    ],
)
@pytest.mark.parametrize("retryable", [True, False])
def test_to_exception_maps_back_to_the_subclass(
    error_type: ErrorType, cls: type[DurableExecutionError], retryable: bool
) -> None:
    info = DurableExecutionErrorInfo(message="msg", error_type=error_type, is_retryable=retryable)
    exc = info.to_exception()
    assert type(exc) is cls
    assert exc.message == "msg"
    assert exc.is_retryable is retryable
    assert DurableExecutionErrorInfo.from_exception(exc).error_type is error_type


# -- ids -------------------------------------------------------------------------------------

EXECUTION_ID = re.compile(r"te_[0-9a-f]{32}")


def test_execution_id_format_and_uniqueness() -> None:
    ids = [new_execution_id() for _ in range(5_000)]
    for execution_id in ids:
        assert EXECUTION_ID.fullmatch(execution_id), execution_id
    assert len(set(ids)) == len(ids)


def test_execution_id_starts_with_the_creation_time() -> None:
    before = int(time.time() * 1000)
    execution_id = new_execution_id()
    after = int(time.time() * 1000)
    # A millisecond time prefix keeps ids roughly ordered by creation.
    assert before <= int(execution_id[3:15], 16) <= after


def test_executor_id_format_and_uniqueness() -> None:
    ids = {new_executor_id() for _ in range(1_000)}
    assert len(ids) == 1_000
    assert all(re.fullmatch(r"dx_[0-9a-f]{16}", executor_id) for executor_id in ids)
