"""Pins the public names: changing them is a decision, not an accident."""

from __future__ import annotations

import importlib

import pytest

import durable_execution
import durable_execution.errors
import durable_execution.storage

TOP_LEVEL = [
    "ChildTask",
    "ChildTaskOutput",
    "ChildTaskResult",
    "ChildrenPolicy",
    "CompletionSpec",
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
    "DurableExecutor",
    "DurableStorage",
    "DurableStorageError",
    "DurableTask",
    "DurableTaskExecution",
    "DurableTaskExecutionStatus",
    "DurableTaskHandle",
    "ExecutionCount",
    "ExecutionNotRetryableError",
    "ExecutionPage",
    "ExecutionTreeNode",
    "ExecutorOptions",
    "ExecutorShutdownError",
    "FINISHED_STATUSES",
    "IdempotencyConflictError",
    "InputValidationError",
    "IterationResult",
    "JsonSerializer",
    "LoopOutput",
    "OnRunAndChildrenCompleteInput",
    "ParentOutput",
    "ParentResult",
    "RetryPolicy",
    "SerializationError",
    "Serializer",
    "StorageSchemaError",
    "TaskContext",
    "UnsupportedByStorageError",
    "WaitTimeoutError",
    "WorkerInfo",
    "__version__",
]

ERRORS = [
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

STORAGE = [
    "ChildResult",
    "CloseResult",
    "CloseState",
    "DEFAULT_SQLITE_PATH",
    "DurableStorage",
    "ExecutionOutcome",
    "ExecutionRecord",
    "NewExecution",
    "ParentToAdvance",
    "STORAGE_URL_ENV",
    "UnservedTask",
    "WakeUpListener",
    "WorkKind",
    "WorkerInfo",
    "default_storage",
    "storage_from_url",
]

# Names the API contract (API.md) uses in its examples.
CONTRACT_NAMES = [
    "DurableExecutor",
    "DurableTask",
    "TaskContext",
    "ChildTask",
    "DurableTaskExecutionStatus",
    "DurableExecutionError",
    "DurableExecutionTimedOutError",
    "DurableExecutionCancelledError",
    "DurableExecutionNotFoundError",
]


def test_top_level_names_are_pinned() -> None:
    assert sorted(durable_execution.__all__) == TOP_LEVEL
    assert len(set(durable_execution.__all__)) == len(durable_execution.__all__)


@pytest.mark.parametrize("name", TOP_LEVEL)
def test_top_level_name_is_importable(name: str) -> None:
    module = importlib.import_module("durable_execution")
    assert getattr(module, name) is not None


def test_contract_names_are_public() -> None:
    assert set(CONTRACT_NAMES) <= set(durable_execution.__all__)


def test_version_is_a_string() -> None:
    assert isinstance(durable_execution.__version__, str)
    assert durable_execution.__version__.count(".") >= 1


def test_errors_module_names_are_pinned_and_exported_at_top_level() -> None:
    assert sorted(durable_execution.errors.__all__) == ERRORS
    for name in ERRORS:
        assert getattr(durable_execution, name) is getattr(durable_execution.errors, name)


def test_storage_names_are_pinned() -> None:
    assert sorted(durable_execution.storage.__all__) == STORAGE
    for name in STORAGE:
        assert getattr(durable_execution.storage, name) is not None
    assert durable_execution.storage.DurableStorage is durable_execution.DurableStorage


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("durable_execution.storage.memory", "InMemoryStorage"),
        ("durable_execution.storage.sqlite", "SQLiteStorage"),
    ],
)
def test_backends_are_importable_and_satisfy_the_protocol(module: str, name: str) -> None:
    backend = getattr(importlib.import_module(module), name)
    assert name in importlib.import_module(module).__all__
    assert issubclass(backend, durable_execution.DurableStorage)


def test_in_memory_storage_instance_is_a_storage() -> None:
    from durable_execution.storage.memory import InMemoryStorage

    assert isinstance(InMemoryStorage(), durable_execution.DurableStorage)
