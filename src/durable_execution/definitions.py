"""Defining tasks: ``task``, ``parent_task``, ``sequential_tasks`` and the input builders.

:class:`TaskDefiner` is shared by :class:`~durable_execution.DurableExecutor` (no validator)
and by the builders that ``input_schema(...)`` / ``validate_input(...)`` return.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any, overload

from durable_execution.context import TaskContext
from durable_execution.task import ChildTask, DurableTask, TaskKind, TaskOptions
from durable_execution.validation import InputValidator

__all__ = ["TaskDefiner"]

Register = Callable[[list[DurableTask[Any, Any]]], None]
RunFn = Callable[..., Any]

_OPTION_KEYS = frozenset({"id", "timeout_ms", "max_retry_attempts", "sleep_ms_before_attempt"})
_COMPLETION_KEYS = _OPTION_KEYS | {"run", "run_parent", "on_run_and_children_complete"}
_SEQUENCE_TIMEOUT_MS = 60_000


class TaskDefiner:
    """Defines tasks and registers them (all of a definition's tasks at once, or none)."""

    def __init__(
        self,
        register: Register,
        validator: InputValidator | None = None,
        validate_on_enqueue: bool | None = None,
    ) -> None:
        if validate_on_enqueue is not None and not isinstance(validate_on_enqueue, bool):
            raise ValueError(
                f"Invalid option validate_on_enqueue={validate_on_enqueue!r}: "
                "expected True, False or None"
            )
        self._register = register
        self._validator = validator
        self._validate_on_enqueue = validate_on_enqueue

    # -- task --------------------------------------------------------------------------------

    @overload
    def task(
        self,
        *,
        id: str,
        timeout_ms: int,
        max_retry_attempts: int = 0,
        sleep_ms_before_attempt: int = 0,
        run: None = None,
    ) -> Callable[[RunFn], DurableTask[Any, Any]]: ...

    @overload
    def task(
        self,
        *,
        id: str,
        timeout_ms: int,
        max_retry_attempts: int = 0,
        sleep_ms_before_attempt: int = 0,
        run: RunFn,
    ) -> DurableTask[Any, Any]: ...

    def task(
        self,
        *,
        id: str,
        timeout_ms: int,
        max_retry_attempts: int = 0,
        sleep_ms_before_attempt: int = 0,
        run: RunFn | None = None,
    ) -> DurableTask[Any, Any] | Callable[[RunFn], DurableTask[Any, Any]]:
        """Define a task whose ``run(ctx, input)`` returns its output (plain or async).

        Without ``run``, returns a decorator that defines the task from the decorated function.
        """
        options = TaskOptions(id, timeout_ms, max_retry_attempts, sleep_ms_before_attempt)

        def define(fn: RunFn) -> DurableTask[Any, Any]:
            task: DurableTask[Any, Any] = self._make(
                options, TaskKind.TASK, fn, None, False, validator=self._validator
            )
            self._register([task])
            return task

        return define if run is None else define(run)

    # -- parent_task -------------------------------------------------------------------------

    @overload
    def parent_task(
        self,
        *,
        id: str,
        timeout_ms: int,
        max_retry_attempts: int = 0,
        sleep_ms_before_attempt: int = 0,
        run_parent: None = None,
        on_run_and_children_complete: Mapping[str, Any] | None = None,
    ) -> Callable[[RunFn], DurableTask[Any, Any]]: ...

    @overload
    def parent_task(
        self,
        *,
        id: str,
        timeout_ms: int,
        max_retry_attempts: int = 0,
        sleep_ms_before_attempt: int = 0,
        run_parent: RunFn,
        on_run_and_children_complete: Mapping[str, Any] | None = None,
    ) -> DurableTask[Any, Any]: ...

    def parent_task(
        self,
        *,
        id: str,
        timeout_ms: int,
        max_retry_attempts: int = 0,
        sleep_ms_before_attempt: int = 0,
        run_parent: RunFn | None = None,
        on_run_and_children_complete: Mapping[str, Any] | None = None,
    ) -> DurableTask[Any, Any] | Callable[[RunFn], DurableTask[Any, Any]]:
        """Define a parent task: ``run_parent(ctx, input)`` returns ``{"output", "children"}``.

        The children run in parallel. ``on_run_and_children_complete`` (a mapping of the
        options of ``task`` or ``parent_task``, nesting to any depth) runs after them and its
        output becomes the parent's output. Without ``run_parent``, returns a decorator.
        """
        options = TaskOptions(id, timeout_ms, max_retry_attempts, sleep_ms_before_attempt)

        def define(fn: RunFn) -> DurableTask[Any, Any]:
            defined: list[DurableTask[Any, Any]] = []
            completion = None
            if on_run_and_children_complete is not None:
                completion = self._completion_from_spec(
                    on_run_and_children_complete, id, defined, self._validator
                )
            task: DurableTask[Any, Any] = self._make(
                options, TaskKind.PARENT, fn, completion, False, validator=self._validator
            )
            self._register([task, *defined])
            return task

        return define if run_parent is None else define(run_parent)

    def _make(
        self,
        options: TaskOptions,
        kind: TaskKind,
        fn: RunFn,
        completion: DurableTask[Any, Any] | None,
        is_completion: bool,
        validator: InputValidator | None = None,
        steps: tuple[DurableTask[Any, Any], ...] | None = None,
        parent_input_validator: InputValidator | None = None,
    ) -> DurableTask[Any, Any]:
        return DurableTask(
            options=options,
            kind=kind,
            run_fn=fn,
            validator=validator,
            completion=completion,
            is_completion=is_completion,
            steps=steps,
            validate_on_enqueue=None if is_completion else self._validate_on_enqueue,
            parent_input_validator=parent_input_validator,
        )

    def _completion_from_spec(
        self,
        spec: Mapping[str, Any],
        parent_id: str,
        defined: list[DurableTask[Any, Any]],
        parent_input_validator: InputValidator | None,
    ) -> DurableTask[Any, Any]:
        """The completion task of ``spec``; with the parent's validator, applied to the
        ``value.input`` it gets (its own input, the value, is not validated)."""
        where = f"on_run_and_children_complete of task {parent_id!r}"
        if not isinstance(spec, Mapping):
            raise ValueError(f"{where} must be a mapping of task options, got {spec!r}")
        unknown = set(spec) - _COMPLETION_KEYS
        if unknown:
            raise ValueError(f"{where}: unknown option(s) {', '.join(sorted(map(str, unknown)))}")
        if ("run" in spec) == ("run_parent" in spec):
            raise ValueError(f"{where} needs exactly one of run or run_parent")
        if "id" not in spec or "timeout_ms" not in spec:
            raise ValueError(f"{where} needs id and timeout_ms")
        options = TaskOptions(**{k: v for k, v in spec.items() if k in _OPTION_KEYS})
        nested = spec.get("on_run_and_children_complete")
        if "run" in spec:
            if nested is not None:
                raise ValueError(f"{where}: on_run_and_children_complete needs run_parent")
            task = self._make(
                options,
                TaskKind.TASK,
                spec["run"],
                None,
                True,
                parent_input_validator=parent_input_validator,
            )
        else:
            inner = None
            if nested is not None:  # its value.input is this completion's input, as stored
                inner = self._completion_from_spec(nested, options.id, defined, None)
            task = self._make(
                options,
                TaskKind.PARENT,
                spec["run_parent"],
                inner,
                True,
                parent_input_validator=parent_input_validator,
            )
        defined.append(task)
        return task

    # -- sequential_tasks --------------------------------------------------------------------

    def sequential_tasks(
        self,
        *tasks: DurableTask[Any, Any],
        id: str | None = None,
        timeout_ms: int = _SEQUENCE_TIMEOUT_MS,
    ) -> DurableTask[Any, Any]:
        """A task that runs ``tasks`` one after the other, each getting the previous output.

        Its output is the last task's output. Without ``id``, the id is derived from the
        members' ids. It is a parent task whose children are the steps, added one at a time
        as each completes (``child_execution_ids`` lists those started so far); a step that
        does not complete makes it ``children_failed``. ``timeout_ms`` bounds its own short
        run (which starts the first step), not the steps.
        """
        if not tasks:
            raise ValueError("sequential_tasks needs at least one task")
        for position, task in enumerate(tasks):
            if not isinstance(task, DurableTask) or task.is_completion:
                raise ValueError(
                    f"sequential_tasks: item {position} is not a task that can be enqueued: "
                    f"{task!r}"
                )
        seq_id = id if id is not None else _derived_sequence_id(tasks)
        options = TaskOptions(seq_id, timeout_ms)
        sequence = self._make(
            options,
            TaskKind.SEQUENCE,
            _run_first(tasks[0]),
            None,
            False,
            validator=self._validator,
            steps=tasks,
        )
        self._register([sequence])
        return sequence


def _derived_sequence_id(tasks: tuple[DurableTask[Any, Any], ...]) -> str:
    digest = hashlib.sha256("\x00".join(t.id for t in tasks).encode()).hexdigest()[:16]
    return f"sequential_{digest}"


def _run_first(task: DurableTask[Any, Any]) -> RunFn:
    async def run_parent(ctx: TaskContext, value: Any) -> dict[str, Any]:
        return {"output": None, "children": [ChildTask(task, value)]}

    return run_parent
