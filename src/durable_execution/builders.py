"""The executor's builder methods: ``input_schema``, ``validate_input``, ``parent_schema_task``.

The builders they return are :class:`~durable_execution.validated.ValidatedTaskDefiner` s.
``parent_schema_task`` is typed for pydantic models (``run_parent`` gets the model;
``enqueue_task`` takes the model or a mapping); any other schema gives an untyped task: use
``input_schema(schema).parent_task(...)`` to have it typed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, NotRequired, TypeAlias, TypeVar, Unpack, overload

from durable_execution.children_policy import ChildrenPolicy
from durable_execution.definition_types import (
    AnyParentReturn,
    HasValidate,
    InputRun,
    ModelT,
    ParentReturn,
    ParentTaskOptionArgs,
    StructT,
    ValidatedCompletedParentDecorator,
    ValidatedParentDecorator,
)
from durable_execution.definitions import Definitions, RunFn
from durable_execution.retry import RetryPolicy
from durable_execution.shapes import CompletionSpec, ParentOutput
from durable_execution.task import DurableTask, task_options
from durable_execution.validated import ValidatedTaskDefiner
from durable_execution.validation import validator_from_function, validator_from_schema

if TYPE_CHECKING:  # an optional dependency: never imported at run time
    from pydantic import TypeAdapter

__all__ = ["BuilderMethods"]

RawT = TypeVar("RawT")
ParsedT = TypeVar("ParsedT")
R = TypeVar("R")
C = TypeVar("C")

_Raw: TypeAlias = ModelT | Mapping[str, Any]


class _SchemaTaskOptionArgs(ParentTaskOptionArgs):
    validate_on_enqueue: NotRequired[bool | None]


class BuilderMethods(Definitions):
    """The executor's methods that define tasks validating their input."""

    @overload
    def input_schema(
        self, schema: type[ModelT], *, validate_on_enqueue: bool | None = None
    ) -> ValidatedTaskDefiner[ModelT | Mapping[str, Any], ModelT]: ...

    @overload
    def input_schema(
        self, schema: type[StructT], *, validate_on_enqueue: bool | None = None
    ) -> ValidatedTaskDefiner[StructT | Mapping[str, Any], StructT]: ...

    @overload
    def input_schema(
        self, schema: TypeAdapter[ParsedT], *, validate_on_enqueue: bool | None = None
    ) -> ValidatedTaskDefiner[ParsedT, ParsedT]: ...

    @overload
    def input_schema(
        self, schema: HasValidate[ParsedT], *, validate_on_enqueue: bool | None = None
    ) -> ValidatedTaskDefiner[Any, ParsedT]: ...

    @overload
    def input_schema(
        self, schema: object, *, validate_on_enqueue: bool | None = None
    ) -> ValidatedTaskDefiner[Any, Any]: ...

    def input_schema(
        self, schema: object, *, validate_on_enqueue: bool | None = None
    ) -> ValidatedTaskDefiner[Any, Any]:
        """A builder whose tasks validate their input with ``schema`` before ``run``.

        ``schema``: a pydantic model or ``TypeAdapter``, a msgspec type, or an object with a
        ``validate(value)`` method (see :mod:`durable_execution.validation`). Typed: with a
        pydantic model or msgspec ``Struct`` ``M``, ``run`` gets an ``M`` and
        ``enqueue_task`` takes an ``M`` or a mapping; with a ``TypeAdapter[T]``, a ``T``;
        with ``validate(value) -> T``, ``run`` gets a ``T`` (any input); anything else is
        untyped.

        ``validate_on_enqueue=True``: ``enqueue_task`` validates the input first and raises
        :class:`~durable_execution.errors.InputValidationError`, storing nothing, when it is
        invalid (``None``: as the executor's option says; ``False``: the execution fails).
        """
        return ValidatedTaskDefiner(
            self._register, validator_from_schema(schema), validate_on_enqueue
        )

    @overload
    def validate_input(
        self,
        fn: Callable[[RawT], Awaitable[ParsedT]],
        *,
        validate_on_enqueue: bool | None = None,
    ) -> ValidatedTaskDefiner[RawT, ParsedT]: ...

    @overload
    def validate_input(
        self, fn: Callable[[RawT], ParsedT], *, validate_on_enqueue: bool | None = None
    ) -> ValidatedTaskDefiner[RawT, ParsedT]: ...

    def validate_input(
        self, fn: Callable[[Any], Any], *, validate_on_enqueue: bool | None = None
    ) -> ValidatedTaskDefiner[Any, Any]:
        """A builder whose tasks pass their input through ``fn`` (plain or async) before
        ``run``; ``fn`` returns the value to pass on, or raises to reject the input.

        Typed: with ``fn(raw: Raw) -> Parsed``, ``run`` gets a ``Parsed`` and
        ``enqueue_task`` takes a ``Raw``. ``validate_on_enqueue`` as for
        :meth:`input_schema`.
        """
        return ValidatedTaskDefiner(
            self._register, validator_from_function(fn), validate_on_enqueue
        )

    @overload
    def parent_schema_task(
        self,
        *,
        input_schema: type[ModelT],
        run_parent: InputRun[ModelT, ParentReturn[R]],
        on_run_and_children_complete: None = None,
        **options: Unpack[_SchemaTaskOptionArgs],
    ) -> DurableTask[_Raw[ModelT], ParentOutput[R]]: ...

    @overload
    def parent_schema_task(
        self,
        *,
        input_schema: type[ModelT],
        run_parent: InputRun[ModelT, AnyParentReturn],
        on_run_and_children_complete: None = None,
        **options: Unpack[_SchemaTaskOptionArgs],
    ) -> DurableTask[_Raw[ModelT], ParentOutput[Any]]: ...

    @overload
    def parent_schema_task(
        self,
        *,
        input_schema: type[ModelT],
        run_parent: InputRun[ModelT, AnyParentReturn],
        on_run_and_children_complete: CompletionSpec[ModelT, Any, Awaitable[C]],
        **options: Unpack[_SchemaTaskOptionArgs],
    ) -> DurableTask[_Raw[ModelT], C]: ...

    @overload
    def parent_schema_task(
        self,
        *,
        input_schema: type[ModelT],
        run_parent: InputRun[ModelT, AnyParentReturn],
        on_run_and_children_complete: CompletionSpec[ModelT, Any, C],
        **options: Unpack[_SchemaTaskOptionArgs],
    ) -> DurableTask[_Raw[ModelT], C]: ...

    @overload
    def parent_schema_task(
        self,
        *,
        input_schema: type[ModelT],
        run_parent: InputRun[ModelT, AnyParentReturn],
        on_run_and_children_complete: Mapping[str, Any],
        **options: Unpack[_SchemaTaskOptionArgs],
    ) -> DurableTask[_Raw[ModelT], Any]: ...

    @overload
    def parent_schema_task(
        self,
        *,
        input_schema: type[ModelT],
        run_parent: None = None,
        on_run_and_children_complete: None = None,
        **options: Unpack[_SchemaTaskOptionArgs],
    ) -> ValidatedParentDecorator[_Raw[ModelT], ModelT]: ...

    @overload
    def parent_schema_task(
        self,
        *,
        input_schema: type[ModelT],
        run_parent: None = None,
        on_run_and_children_complete: CompletionSpec[ModelT, Any, Awaitable[C]],
        **options: Unpack[_SchemaTaskOptionArgs],
    ) -> ValidatedCompletedParentDecorator[_Raw[ModelT], ModelT, C]: ...

    @overload
    def parent_schema_task(
        self,
        *,
        input_schema: type[ModelT],
        run_parent: None = None,
        on_run_and_children_complete: CompletionSpec[ModelT, Any, C],
        **options: Unpack[_SchemaTaskOptionArgs],
    ) -> ValidatedCompletedParentDecorator[_Raw[ModelT], ModelT, C]: ...

    @overload
    def parent_schema_task(
        self,
        *,
        input_schema: type[ModelT],
        run_parent: None = None,
        on_run_and_children_complete: Mapping[str, Any],
        **options: Unpack[_SchemaTaskOptionArgs],
    ) -> ValidatedCompletedParentDecorator[_Raw[ModelT], ModelT, Any]: ...

    @overload
    def parent_schema_task(
        self,
        *,
        input_schema: object,
        run_parent: RunFn,
        on_run_and_children_complete: Mapping[str, Any] | None = None,
        **options: Unpack[_SchemaTaskOptionArgs],
    ) -> DurableTask[Any, Any]: ...

    @overload
    def parent_schema_task(
        self,
        *,
        input_schema: object,
        run_parent: None = None,
        on_run_and_children_complete: Mapping[str, Any] | None = None,
        **options: Unpack[_SchemaTaskOptionArgs],
    ) -> Callable[[RunFn], DurableTask[Any, Any]]: ...

    def parent_schema_task(
        self,
        *,
        id: str,
        input_schema: object,
        timeout_ms: int,
        max_retry_attempts: int | None = None,
        sleep_ms_before_attempt: int | None = None,
        retry: RetryPolicy | None = None,
        run_parent: RunFn | None = None,
        on_run_and_children_complete: Mapping[str, Any] | None = None,
        validate_on_enqueue: bool | None = None,
        children_policy: ChildrenPolicy = "fail_fast",
    ) -> Any:
        """Same as ``input_schema(input_schema).parent_task(...)``.

        Typed for a pydantic model; with any other schema the task is untyped (use
        ``input_schema(schema).parent_task(...)`` for its types).
        """
        definitions = Definitions(
            self._register, validator_from_schema(input_schema), validate_on_enqueue
        )
        options = task_options(id, timeout_ms, max_retry_attempts, sleep_ms_before_attempt, retry)
        return definitions._define_parent(
            options, run_parent, on_run_and_children_complete, children_policy
        )
