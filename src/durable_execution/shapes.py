"""The typed shapes of the dicts that parent tasks exchange with the library.

They are :class:`~typing.TypedDict` s: at run time plain dicts, to the type checker the keys and
value types of each. None of them is required: ``run_parent`` may return any mapping with the
same keys, and a completion task may be given as any mapping of options. They let mypy infer a
parent task's output type:

- :class:`ParentResult` is what ``run_parent`` returns; annotate it as ``ParentResult[R]`` and
  a parent without a completion task is a ``DurableTask[In, ParentOutput[R]]``.
- :class:`ParentOutput` is the output of a parent without a completion task.
- :class:`CompletionSpec` is ``on_run_and_children_complete`` when it has a ``run`` function:
  the parent's output type is then that function's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, Never, NotRequired, TypedDict, TypeVar

from durable_execution.context import OnRunAndChildrenCompleteInput, TaskContext
from durable_execution.retry import RetryPolicy
from durable_execution.task import AnyChildTask, DurableTask

__all__ = [
    "ChildOutputDict",
    "ChildResultDict",
    "ChildSpec",
    "CompletionSpec",
    "IterationResult",
    "LoopOutput",
    "ParentOutput",
    "ParentResult",
]

R = TypeVar("R")
C = TypeVar("C")
P = TypeVar("P")
Q = TypeVar("Q")


class ChildSpec(TypedDict):
    """A child as a mapping, same as ``ChildTask(task, input, attributes, delay_ms=...)``.

    Its input is not checked against the task's input type: use :class:`ChildTask` for that.
    """

    task: DurableTask[Never, object]
    input: NotRequired[object]
    attributes: NotRequired[Mapping[str, object] | None]
    delay_ms: NotRequired[int]


class ParentResult(TypedDict, Generic[R]):
    """What ``run_parent`` returns: its own output and the children to run in parallel.

    ``children`` may be left out (no children). ``output`` is required here (use ``None``);
    the run time also accepts a mapping without it.
    """

    output: R
    children: NotRequired[Sequence[AnyChildTask | ChildSpec] | None]


class ChildOutputDict(TypedDict):
    """One child's output, in a :class:`ParentOutput`."""

    task_id: str
    execution_id: str
    output: Any


class ChildResultDict(TypedDict):
    """How one child ended, in a :class:`ParentOutput` of an ``all_settled`` parent:
    ``status`` is the value of a finished status, ``error`` the dict of a
    :class:`~durable_execution.DurableExecutionErrorInfo` (without traceback) or ``None``."""

    task_id: str
    execution_id: str
    status: str
    output: Any
    error: dict[str, Any] | None


class ParentOutput(TypedDict, Generic[R]):
    """The output of a parent task without ``on_run_and_children_complete``: ``run_parent``'s
    output and the children's outputs, in the order the children were returned; under the
    ``all_settled`` children policy also ``children``, how each child ended (the output of
    a child that did not complete is ``None`` in ``children_outputs``)."""

    output: R
    children_outputs: list[ChildOutputDict]
    children: NotRequired[list[ChildResultDict]]


class CompletionSpec(TypedDict, Generic[P, Q, C]):
    """``on_run_and_children_complete`` given a ``run`` function: the completion task's options.

    ``CompletionSpec[In, R, Out]``: ``run(ctx, value)`` gets an
    :class:`~durable_execution.OnRunAndChildrenCompleteInput` ``[In, R]``, whose ``input``
    is the parent's input (the validated value when the parent validates its input) and
    ``output`` is ``run_parent``'s output, and returns the parent's output (``Out``; plain
    or async). The completion task may instead be a parent (``run_parent``, and its own
    ``on_run_and_children_complete``): give that as any mapping.
    """

    id: str
    timeout_ms: int
    max_retry_attempts: NotRequired[int]
    sleep_ms_before_attempt: NotRequired[int]
    retry: NotRequired[RetryPolicy | None]
    run: Callable[[TaskContext, OnRunAndChildrenCompleteInput[P, Q]], C]


class IterationResult(TypedDict, Generic[R]):
    """What the iteration task of a ``looping_task`` returns: ``is_done`` ends the loop, with
    ``output`` as its result; otherwise the next iteration runs."""

    is_done: bool
    output: NotRequired[R]


class LoopOutput(TypedDict, Generic[R]):
    """The output of a ``looping_task``: ``{"is_success": True, "output": ...}`` once an
    iteration was done, ``{"is_success": False}`` when ``max_iterations`` ran without it."""

    is_success: bool
    output: NotRequired[R]
