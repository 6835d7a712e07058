"""Storage: the contract (:class:`DurableStorage`), its records, and the backends.

Backends live in submodules so that their drivers are imported only when used:
``durable_execution.storage.memory``, ``.sqlite`` and ``.postgres``.
"""

from durable_execution.storage.protocol import DurableStorage, WakeUpListener
from durable_execution.storage.records import (
    ChildResult,
    CloseResult,
    CloseState,
    ExecutionOutcome,
    ExecutionRecord,
    NewExecution,
    ParentToAdvance,
    WorkKind,
)
from durable_execution.storage.url import (
    DEFAULT_SQLITE_PATH,
    STORAGE_URL_ENV,
    default_storage,
    storage_from_url,
)
from durable_execution.storage.workers import UnservedTask, WorkerInfo

__all__ = [
    "DEFAULT_SQLITE_PATH",
    "STORAGE_URL_ENV",
    "ChildResult",
    "CloseResult",
    "CloseState",
    "DurableStorage",
    "ExecutionOutcome",
    "ExecutionRecord",
    "NewExecution",
    "ParentToAdvance",
    "UnservedTask",
    "WakeUpListener",
    "WorkKind",
    "WorkerInfo",
    "default_storage",
    "storage_from_url",
]
