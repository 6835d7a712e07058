"""The executor's builder methods: ``input_schema``, ``validate_input``, ``parent_schema_task``.

Each returns, or defines its task through, a :class:`~durable_execution.definitions.TaskDefiner`
whose tasks validate their input.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, overload

from durable_execution.definitions import TaskDefiner
from durable_execution.task import DurableTask
from durable_execution.validation import validator_from_function, validator_from_schema

__all__ = ["BuilderMethods"]


class BuilderMethods(TaskDefiner):
    """The executor's methods that define tasks validating their input."""

    def input_schema(self, schema: Any, *, validate_on_enqueue: bool | None = None) -> TaskDefiner:
        """A builder whose tasks validate their input with ``schema`` before ``run``.

        ``schema``: a pydantic model or ``TypeAdapter``, a msgspec type, or an object with a
        ``validate(value)`` method (see :mod:`durable_execution.validation`).

        ``validate_on_enqueue=True``: ``enqueue_task`` validates the input first and raises
        :class:`~durable_execution.errors.InputValidationError`, storing nothing, when it is
        invalid (``None``: as the executor's option says; ``False``: the execution fails).
        """
        return TaskDefiner(self._register, validator_from_schema(schema), validate_on_enqueue)

    def validate_input(
        self, fn: Callable[[Any], Any], *, validate_on_enqueue: bool | None = None
    ) -> TaskDefiner:
        """A builder whose tasks pass their input through ``fn`` (plain or async) before
        ``run``; ``fn`` returns the value to pass on, or raises to reject the input.
        ``validate_on_enqueue`` as for :meth:`input_schema`."""
        return TaskDefiner(self._register, validator_from_function(fn), validate_on_enqueue)

    @overload
    def parent_schema_task(
        self,
        *,
        id: str,
        input_schema: Any,
        timeout_ms: int,
        max_retry_attempts: int = 0,
        sleep_ms_before_attempt: int = 0,
        run_parent: None = None,
        on_run_and_children_complete: Mapping[str, Any] | None = None,
        validate_on_enqueue: bool | None = None,
    ) -> Callable[[Callable[..., Any]], DurableTask[Any, Any]]: ...

    @overload
    def parent_schema_task(
        self,
        *,
        id: str,
        input_schema: Any,
        timeout_ms: int,
        max_retry_attempts: int = 0,
        sleep_ms_before_attempt: int = 0,
        run_parent: Callable[..., Any],
        on_run_and_children_complete: Mapping[str, Any] | None = None,
        validate_on_enqueue: bool | None = None,
    ) -> DurableTask[Any, Any]: ...

    def parent_schema_task(
        self,
        *,
        id: str,
        input_schema: Any,
        timeout_ms: int,
        max_retry_attempts: int = 0,
        sleep_ms_before_attempt: int = 0,
        run_parent: Callable[..., Any] | None = None,
        on_run_and_children_complete: Mapping[str, Any] | None = None,
        validate_on_enqueue: bool | None = None,
    ) -> DurableTask[Any, Any] | Callable[[Callable[..., Any]], DurableTask[Any, Any]]:
        """Same as ``input_schema(input_schema, validate_on_enqueue=...).parent_task(...)``."""
        builder = self.input_schema(input_schema, validate_on_enqueue=validate_on_enqueue)
        if run_parent is None:
            return builder.parent_task(
                id=id,
                timeout_ms=timeout_ms,
                max_retry_attempts=max_retry_attempts,
                sleep_ms_before_attempt=sleep_ms_before_attempt,
                on_run_and_children_complete=on_run_and_children_complete,
            )
        return builder.parent_task(
            id=id,
            timeout_ms=timeout_ms,
            max_retry_attempts=max_retry_attempts,
            sleep_ms_before_attempt=sleep_ms_before_attempt,
            run_parent=run_parent,
            on_run_and_children_complete=on_run_and_children_complete,
        )
