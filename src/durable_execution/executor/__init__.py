"""The executor: lifecycle, the background loops, and running one execution."""

from durable_execution.executor.executor import DurableExecutor
from durable_execution.executor.lifecycle import ExecutorState
from durable_execution.executor.options import ExecutorOptions

__all__ = ["DurableExecutor", "ExecutorOptions", "ExecutorState"]
