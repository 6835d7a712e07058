"""durable_execution: tasks and task trees that survive crashes, retries and restarts.

Start with :class:`DurableExecutor`; see the README for a tour.
"""

from durable_execution.children_policy import ChildrenPolicy
from durable_execution.context import (
    ChildTaskOutput,
    ChildTaskResult,
    OnRunAndChildrenCompleteInput,
    TaskContext,
)
from durable_execution.errors import (
    DataTooLargeError,
    DuplicateExecutionError,
    DuplicateUniqueIdError,
    DurableError,
    DurableExecutionCancelledError,
    DurableExecutionError,
    DurableExecutionErrorInfo,
    DurableExecutionErrorType,
    DurableExecutionNotFoundError,
    DurableExecutionTimedOutError,
    DurableStorageError,
    ExecutionNotRetryableError,
    ExecutorShutdownError,
    IdempotencyConflictError,
    InputValidationError,
    SerializationError,
    StorageSchemaError,
    UnsupportedByStorageError,
    WaitTimeoutError,
)
from durable_execution.execution import DurableTaskExecution
from durable_execution.executor import DurableExecutor, ExecutorOptions
from durable_execution.executor.inspection import ExecutionPage, ExecutionTreeNode
from durable_execution.handle import DurableTaskHandle
from durable_execution.retry import RetryPolicy
from durable_execution.serialization import JsonSerializer, Serializer
from durable_execution.shapes import (
    CompletionSpec,
    IterationResult,
    LoopOutput,
    ParentOutput,
    ParentResult,
)
from durable_execution.status import FINISHED_STATUSES, DurableTaskExecutionStatus
from durable_execution.storage.inspection import ExecutionCount
from durable_execution.storage.protocol import DurableStorage
from durable_execution.storage.workers import WorkerInfo
from durable_execution.task import ChildTask, DurableTask

__version__ = "0.1.0"

__all__ = [
    "FINISHED_STATUSES",
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
