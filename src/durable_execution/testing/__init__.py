"""Testing helpers for users of durable_execution.

For the tests of an application:

- :func:`run_task` runs one task to its end and returns the finished execution;
- :func:`in_memory` runs an executor (an application's module-level one) on a fresh
  in-memory storage for one ``async with`` block;
- the pytest plugin :mod:`durable_execution.testing.pytest_plugin` (registered when the
  package is installed) gives each test a fresh, started in-memory executor: the
  ``durable_executor`` fixture;
- :class:`DelegatingStorage` forwards every operation to a real storage: subclass it for a
  test double that fails, pauses or counts some of them.

For the authors of a storage backend: :class:`StorageConformanceSuite` checks that it keeps the
:class:`~durable_execution.storage.DurableStorage` contract: subclass it in a pytest module.
Each optional ability (:mod:`durable_execution.storage.abilities`) has a part of its own, to
mix in beside it when the backend has the ability: :class:`TransactionalEnqueueConformance`,
:class:`WorkerRegistryConformance`, :class:`SleepingExecutionsConformance`,
:class:`ExecutionQueriesConformance`, :class:`TreeRetryConformance`,
:class:`ExecutionPurgeConformance`, :class:`MaintenanceConformance`,
:class:`CallerClockConformance`, :class:`StampedWritesConformance`.

Importing this package does not import pytest.
"""

from durable_execution.testing.caller_clock import CallerClockConformance
from durable_execution.testing.delegating import DelegatingStorage
from durable_execution.testing.execution_queries import ExecutionQueriesConformance
from durable_execution.testing.maintenance import MaintenanceConformance
from durable_execution.testing.memory import in_memory
from durable_execution.testing.run import run_task
from durable_execution.testing.sleeping import SleepingExecutionsConformance
from durable_execution.testing.stamped_writes import StampedWritesConformance
from durable_execution.testing.suite import StorageConformanceSuite
from durable_execution.testing.transactional_enqueue import TransactionalEnqueueConformance
from durable_execution.testing.trees import ExecutionPurgeConformance, TreeRetryConformance
from durable_execution.testing.worker_registry import WorkerRegistryConformance

__all__ = [
    "CallerClockConformance",
    "DelegatingStorage",
    "ExecutionPurgeConformance",
    "ExecutionQueriesConformance",
    "MaintenanceConformance",
    "SleepingExecutionsConformance",
    "StampedWritesConformance",
    "StorageConformanceSuite",
    "TransactionalEnqueueConformance",
    "TreeRetryConformance",
    "WorkerRegistryConformance",
    "in_memory",
    "run_task",
]
