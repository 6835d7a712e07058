"""Types for the definition methods: run function shapes, options and the decorators.

Nothing here runs: these are the types that let mypy infer ``DurableTask[In, Out]`` from a
run function (see ``definitions.py`` and ``validated.py``). A decorator is what ``task(...)``,
``parent_task(...)`` and the builders' methods return when called without ``run`` /
``run_parent``: a callable that defines the task from the decorated function.

Why overloads in this order: an ``async def`` also matches ``Callable[[TaskContext, InT], OutT]``
(with ``Out`` a coroutine), so the ``Awaitable`` forms come first; a run function taking only
``ctx`` leaves ``In`` to be ``None``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, NotRequired, Protocol, TypedDict, TypeVar, overload

from durable_execution.children_policy import ChildrenPolicy
from durable_execution.context import TaskContext
from durable_execution.retry import RetryPolicy
from durable_execution.shapes import ParentOutput, ParentResult
from durable_execution.task import DurableTask

if TYPE_CHECKING:  # optional dependencies: never imported at run time
    import msgspec
    from pydantic import BaseModel

__all__ = [
    "AnyParentReturn",
    "CompletedParentDecorator",
    "HasValidate",
    "ModelT",
    "InT",
    "InputRun",
    "ParentDecorator",
    "ParentReturn",
    "SequenceOptionArgs",
    "StructT",
    "TaskDecorator",
    "ParentTaskOptionArgs",
    "TaskOptionArgs",
    "ValidatedCompletedParentDecorator",
    "ValidatedParentDecorator",
    "ValidatedTaskDecorator",
]

if TYPE_CHECKING:
    from typing_extensions import TypeVar as TypeVarWithDefault

    # The input type of a run function. A lambda's parameters say nothing about it: it is
    # then Any (a type variable left unsolved would be Never, refusing every input).
    InT = TypeVarWithDefault("InT", default=Any)
else:
    InT = TypeVar("InT")
OutT = TypeVar("OutT")
R = TypeVar("R")
C_co = TypeVar("C_co", covariant=True)
RawT_contra = TypeVar("RawT_contra", contravariant=True)
ParsedT_co = TypeVar("ParsedT_co", covariant=True)
T_co = TypeVar("T_co", covariant=True)
_ParsedT = TypeVar("_ParsedT")
# Schemas whose stored input may be the model itself or its data as a mapping.
ModelT = TypeVar("ModelT", bound="BaseModel")
StructT = TypeVar("StructT", bound="msgspec.Struct")


class HasValidate(Protocol[T_co]):
    """A schema with a ``validate(value)`` method (or class method) returning a ``T``."""

    def validate(self, value: Any, /) -> T_co: ...


class TaskOptionArgs(TypedDict):
    """The options of every task, as keyword arguments (see ``TaskOptions``)."""

    id: str
    timeout_ms: int
    max_retry_attempts: NotRequired[int]
    sleep_ms_before_attempt: NotRequired[int]
    retry: NotRequired[RetryPolicy | None]


class ParentTaskOptionArgs(TaskOptionArgs):
    """The options of ``parent_task``: those of every task, and its ``children_policy``."""

    children_policy: NotRequired[ChildrenPolicy]


class SequenceOptionArgs(TypedDict):
    """The options of ``sequential_tasks``."""

    id: NotRequired[str | None]
    timeout_ms: NotRequired[int]
    retry: NotRequired[RetryPolicy | None]


# A run function of a builder that validates its input: it takes the validated value, or
# only ``ctx``.
InputRun = Callable[[TaskContext, _ParsedT], OutT] | Callable[[TaskContext], OutT]

# What ``run_parent`` returns (plain or async): a ParentResult[R] (the parent's output
# without a completion task is then a ParentOutput[R]), or any other mapping (a dict, the
# result of a lambda: run_parent's output is then not known).
ParentReturn = Awaitable[ParentResult[R]] | ParentResult[R]
AnyParentReturn = Awaitable[Mapping[str, object]] | Mapping[str, object]


class TaskDecorator(Protocol):
    """``task(...)`` without ``run``: decorate ``run(ctx, input)`` or ``run(ctx)``."""

    @overload
    def __call__(
        self, run: Callable[[TaskContext, InT], Awaitable[OutT]], /
    ) -> DurableTask[InT, OutT]: ...

    @overload
    def __call__(self, run: Callable[[TaskContext, InT], OutT], /) -> DurableTask[InT, OutT]: ...

    @overload
    def __call__(
        self, run: Callable[[TaskContext], Awaitable[OutT]], /
    ) -> DurableTask[None, OutT]: ...

    @overload
    def __call__(self, run: Callable[[TaskContext], OutT], /) -> DurableTask[None, OutT]: ...


class ParentDecorator(Protocol):
    """``parent_task(...)`` without ``run_parent`` nor a typed completion task."""

    @overload
    def __call__(
        self, run_parent: Callable[[TaskContext, InT], ParentReturn[R]], /
    ) -> DurableTask[InT, ParentOutput[R]]: ...

    @overload
    def __call__(
        self, run_parent: Callable[[TaskContext], ParentReturn[R]], /
    ) -> DurableTask[None, ParentOutput[R]]: ...

    @overload
    def __call__(
        self, run_parent: Callable[[TaskContext, InT], AnyParentReturn], /
    ) -> DurableTask[InT, ParentOutput[Any]]: ...

    @overload
    def __call__(
        self, run_parent: Callable[[TaskContext], AnyParentReturn], /
    ) -> DurableTask[None, ParentOutput[Any]]: ...


class CompletedParentDecorator(Protocol[C_co]):
    """``parent_task(...)`` without ``run_parent``, with a completion task of output ``C``."""

    @overload
    def __call__(
        self, run_parent: Callable[[TaskContext, InT], AnyParentReturn], /
    ) -> DurableTask[InT, C_co]: ...

    @overload
    def __call__(
        self, run_parent: Callable[[TaskContext], AnyParentReturn], /
    ) -> DurableTask[None, C_co]: ...


class ValidatedTaskDecorator(Protocol[RawT_contra, ParsedT_co]):
    """A builder's ``task(...)`` without ``run``: ``run`` gets the validated input."""

    @overload
    def __call__(
        self, run: Callable[[TaskContext, ParsedT_co], Awaitable[OutT]], /
    ) -> DurableTask[RawT_contra, OutT]: ...

    @overload
    def __call__(
        self, run: Callable[[TaskContext, ParsedT_co], OutT], /
    ) -> DurableTask[RawT_contra, OutT]: ...

    @overload
    def __call__(
        self, run: Callable[[TaskContext], Awaitable[OutT]], /
    ) -> DurableTask[RawT_contra, OutT]: ...

    @overload
    def __call__(self, run: Callable[[TaskContext], OutT], /) -> DurableTask[RawT_contra, OutT]: ...


class ValidatedParentDecorator(Protocol[RawT_contra, ParsedT_co]):
    """A builder's ``parent_task(...)`` without ``run_parent`` nor a typed completion task."""

    @overload
    def __call__(
        self, run_parent: InputRun[ParsedT_co, ParentReturn[R]], /
    ) -> DurableTask[RawT_contra, ParentOutput[R]]: ...

    @overload
    def __call__(
        self,
        run_parent: InputRun[ParsedT_co, AnyParentReturn],
        /,
    ) -> DurableTask[RawT_contra, ParentOutput[Any]]: ...


class ValidatedCompletedParentDecorator(Protocol[RawT_contra, ParsedT_co, C_co]):
    """A builder's ``parent_task(...)`` without ``run_parent``, with a completion task."""

    def __call__(
        self,
        run_parent: InputRun[ParsedT_co, AnyParentReturn],
        /,
    ) -> DurableTask[RawT_contra, C_co]: ...
