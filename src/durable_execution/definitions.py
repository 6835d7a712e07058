"""Defining tasks: ``task``, ``parent_task``, ``sequential_tasks``.

:class:`TaskDefiner` is what :class:`~durable_execution.DurableExecutor` defines tasks with:
the input type of each task is inferred from its run function. The builders that
``input_schema(...)`` / ``validate_input(...)`` return (:mod:`durable_execution.validated`)
share the same machinery, :class:`Definitions`, with the input types fixed by the validator.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar, Unpack, overload

from durable_execution.checks import MAX_DURATION_MS, MAX_ITERATIONS, check_int
from durable_execution.children_policy import ChildrenPolicy, check_children_policy
from durable_execution.context import TaskContext
from durable_execution.definition_types import (
    AnyParentReturn,
    CompletedParentDecorator,
    InT,
    ParentDecorator,
    ParentReturn,
    ParentTaskOptionArgs,
    SequenceOptionArgs,
    TaskDecorator,
    TaskOptionArgs,
)
from durable_execution.retry import RetryPolicy
from durable_execution.shapes import CompletionSpec, IterationResult, LoopOutput, ParentOutput
from durable_execution.task import (
    ChildTask,
    DurableTask,
    LoopSpec,
    TaskKind,
    TaskOptions,
    task_options,
)
from durable_execution.validation import InputValidator

__all__ = ["Definitions", "TaskDefiner"]

Register = Callable[[list[DurableTask[Any, Any]]], None]
RunFn = Callable[..., Any]

OutT = TypeVar("OutT")
R = TypeVar("R")
C = TypeVar("C")
S1 = TypeVar("S1")
S2 = TypeVar("S2")
S3 = TypeVar("S3")
S4 = TypeVar("S4")
S5 = TypeVar("S5")

_OPTION_KEYS = frozenset(
    {"id", "timeout_ms", "max_retry_attempts", "sleep_ms_before_attempt", "retry"}
)
_COMPLETION_KEYS = _OPTION_KEYS | {
    "run",
    "run_parent",
    "on_run_and_children_complete",
    "children_policy",
}
SEQUENCE_TIMEOUT_MS = 60_000

# A completion task given as a mapping.
_AnyCompletion = Mapping[str, Any]


class Definitions:
    """Defines tasks and registers them (all of a definition's tasks at once, or none).

    The untyped machinery behind :class:`TaskDefiner` and the validating builders.
    """

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

    def _make(
        self,
        options: TaskOptions,
        kind: TaskKind,
        fn: RunFn,
        completion: DurableTask[Any, Any] | None = None,
        steps: tuple[DurableTask[Any, Any], ...] | None = None,
        children_policy: ChildrenPolicy = "fail_fast",
    ) -> DurableTask[Any, Any]:
        """A task of this definer: validated by its validator, if it has one."""
        return DurableTask(
            options=options,
            kind=kind,
            run_fn=fn,
            validator=self._validator,
            completion=completion,
            is_completion=False,
            steps=steps,
            validate_on_enqueue=self._validate_on_enqueue,
            children_policy=children_policy,
        )

    def _define_task(self, options: TaskOptions, run: RunFn | None) -> Any:
        def define(fn: RunFn) -> DurableTask[Any, Any]:
            task = self._make(options, TaskKind.TASK, fn)
            self._register([task])
            return task

        return define if run is None else define(run)

    def _define_parent(
        self,
        options: TaskOptions,
        run_parent: RunFn | None,
        spec: Mapping[str, Any] | None,
        children_policy: object = "fail_fast",
    ) -> Any:
        policy = check_children_policy(children_policy, where=f" of task {options.id!r}")

        def define(fn: RunFn) -> DurableTask[Any, Any]:
            defined: list[DurableTask[Any, Any]] = []
            completion = None
            if spec is not None:
                completion = self._completion_from_spec(spec, options.id, defined, self._validator)
            task = self._make(options, TaskKind.PARENT, fn, completion, children_policy=policy)
            self._register([task, *defined])
            return task

        return define if run_parent is None else define(run_parent)

    def _completion_from_spec(
        self,
        spec: Mapping[str, Any],
        parent_id: str,
        defined: list[DurableTask[Any, Any]],
        parent_input_validator: InputValidator | None,
    ) -> DurableTask[Any, Any]:
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
        options = task_options(**{k: v for k, v in spec.items() if k in _OPTION_KEYS})
        nested = spec.get("on_run_and_children_complete")
        inner = None
        if "run" in spec:
            if nested is not None:
                raise ValueError(f"{where}: on_run_and_children_complete needs run_parent")
        elif nested is not None:
            # The nested completion's value.input is this completion's input, as stored.
            inner = self._completion_from_spec(nested, options.id, defined, None)
        kind = TaskKind.TASK if "run" in spec else TaskKind.PARENT
        task: DurableTask[Any, Any] = DurableTask(
            options=options,
            kind=kind,
            run_fn=spec["run"] if "run" in spec else spec["run_parent"],
            validator=None,
            completion=inner,
            is_completion=True,
            parent_input_validator=parent_input_validator,
            children_policy=check_children_policy(
                spec.get("children_policy", "fail_fast"), where=f" of {where}"
            ),
        )
        defined.append(task)
        return task

    def _define_sequence(
        self,
        tasks: tuple[DurableTask[Any, Any], ...],
        id: str | None,
        timeout_ms: int,
        retry: RetryPolicy | None = None,
    ) -> Any:
        if not tasks:
            raise ValueError("sequential_tasks needs at least one task")
        for position, task in enumerate(tasks):
            if not isinstance(task, DurableTask) or task.is_completion:
                raise ValueError(
                    f"sequential_tasks: item {position} is not a task that can be enqueued: "
                    f"{task!r}"
                )
            if task.kind is TaskKind.SLEEPING:
                raise ValueError(
                    f"sequential_tasks: item {position} is the sleeping task {task.id!r}; a "
                    "sleeping task's input is its unique id: return it as a ChildTask of a "
                    "parent task instead"
                )
        seq_id = id if id is not None else _derived_sequence_id(tasks)
        options = TaskOptions(seq_id, timeout_ms, retry=retry)
        sequence = self._make(options, TaskKind.SEQUENCE, _run_first(tasks[0]), steps=tasks)
        self._register([sequence])
        return sequence

    def _define_loop(
        self,
        id: str,
        iteration_task: DurableTask[Any, Any],
        max_iterations: int,
        sleep_ms_between_iterations: int,
        timeout_ms: int,
    ) -> DurableTask[Any, Any]:
        options = TaskOptions(id, timeout_ms)
        where = f" for looping task {id!r}"
        check_int("max_iterations", max_iterations, minimum=1, maximum=MAX_ITERATIONS, where=where)
        check_int(
            "sleep_ms_between_iterations",
            sleep_ms_between_iterations,
            minimum=0,
            maximum=MAX_DURATION_MS,
            where=where,
        )
        if (
            not isinstance(iteration_task, DurableTask)
            or iteration_task.kind is not TaskKind.TASK
            or iteration_task.is_completion
        ):
            raise ValueError(
                f"looping task {id!r}: iteration_task must be a task defined with task(...) "
                f"(not a parent, sequence, loop or completion task), got {iteration_task!r}"
            )
        # The loop's own copy of the iteration task: its id names the loop, so any executor
        # that claims an iteration knows which loop it hands over to.
        iteration: DurableTask[Any, Any] = DurableTask(
            options=dataclasses.replace(iteration_task.options, id=f"{id}_iteration"),
            kind=TaskKind.TASK,
            run_fn=iteration_task.run_fn,
            validator=iteration_task.validator,
            completion=None,
            is_completion=False,
            validate_on_enqueue=iteration_task.validate_on_enqueue,
        )
        spec = LoopSpec(iteration, max_iterations, sleep_ms_between_iterations)
        loop: DurableTask[Any, Any] = DurableTask(
            options=options,
            kind=TaskKind.LOOP,
            run_fn=_run_first(iteration),
            validator=self._validator,
            completion=None,
            is_completion=False,
            validate_on_enqueue=self._validate_on_enqueue,
            loop=spec,
        )
        self._register([loop, iteration])
        return loop


def _never_run(ctx: TaskContext, unique_id: str) -> Any:
    """The run function of a sleeping task: never called (its executions are never claimed)."""
    raise RuntimeError(f"A sleeping task never runs (execution {ctx.execution_id})")


class TaskDefiner(Definitions):
    """Defines tasks whose types mypy infers from their run functions.

    ``task(..., run=f)`` with ``def f(ctx: TaskContext, input: In) -> Out`` (or ``async def``)
    is a ``DurableTask[In, Out]``; with ``def f(ctx)``, a ``DurableTask[None, Out]``.
    """

    # -- task --------------------------------------------------------------------------------

    @overload
    def task(
        self,
        *,
        run: Callable[[TaskContext, InT], Awaitable[OutT]],
        **options: Unpack[TaskOptionArgs],
    ) -> DurableTask[InT, OutT]: ...

    @overload
    def task(
        self, *, run: Callable[[TaskContext, InT], OutT], **options: Unpack[TaskOptionArgs]
    ) -> DurableTask[InT, OutT]: ...

    @overload
    def task(
        self, *, run: Callable[[TaskContext], Awaitable[OutT]], **options: Unpack[TaskOptionArgs]
    ) -> DurableTask[None, OutT]: ...

    @overload
    def task(
        self, *, run: Callable[[TaskContext], OutT], **options: Unpack[TaskOptionArgs]
    ) -> DurableTask[None, OutT]: ...

    @overload
    def task(self, *, run: None = None, **options: Unpack[TaskOptionArgs]) -> TaskDecorator: ...

    def task(
        self,
        *,
        id: str,
        timeout_ms: int,
        max_retry_attempts: int | None = None,
        sleep_ms_before_attempt: int | None = None,
        retry: RetryPolicy | None = None,
        run: RunFn | None = None,
    ) -> Any:
        """Define a task whose ``run(ctx, input)`` returns its output (plain or async).

        ``run`` may also take only ``ctx`` (the task then takes no input). Options:
        ``id`` (unique per executor, stable across restarts), ``timeout_ms`` (bounds one
        attempt), ``max_retry_attempts`` (default 0) and ``sleep_ms_before_attempt``
        (default 0), or instead of those two ``retry`` (a :class:`~durable_execution.RetryPolicy`:
        attempts, exponential back-off, which errors). Without ``run``, returns a decorator
        that defines the task from the decorated function.
        """
        options = task_options(id, timeout_ms, max_retry_attempts, sleep_ms_before_attempt, retry)
        return self._define_task(options, run)

    # -- sleeping_task -----------------------------------------------------------------------

    def sleeping_task(self, *, id: str, timeout_ms: int) -> DurableTask[str, Any]:
        """Define a sleeping task: its executions run nothing and wait, in storage, for
        ``executor.wakeup_sleeping_task_execution(task, unique_id, ...)`` to give their output
        (or error), from any process on the storage.

        Its input is the execution's unique id (a non-empty ``str``, at most 1,024
        characters), unique among the task's unfinished executions: return it as a child,
        ``ChildTask(task, "order-17")``, or enqueue it as a root. An execution not woken up
        within ``timeout_ms`` (1 ms to 10 years) becomes ``timed_out``; a sleeping execution
        holds no lease, memory or slot in any executor, and its timeout is kept by the storage.
        """
        options = TaskOptions(id, timeout_ms)
        task = self._make(options, TaskKind.SLEEPING, _never_run)
        self._register([task])
        return task

    # -- parent_task -------------------------------------------------------------------------

    @overload
    def parent_task(
        self,
        *,
        run_parent: Callable[[TaskContext, InT], ParentReturn[R]],
        on_run_and_children_complete: None = None,
        **options: Unpack[ParentTaskOptionArgs],
    ) -> DurableTask[InT, ParentOutput[R]]: ...

    @overload
    def parent_task(
        self,
        *,
        run_parent: Callable[[TaskContext], ParentReturn[R]],
        on_run_and_children_complete: None = None,
        **options: Unpack[ParentTaskOptionArgs],
    ) -> DurableTask[None, ParentOutput[R]]: ...

    @overload
    def parent_task(
        self,
        *,
        run_parent: Callable[[TaskContext, InT], AnyParentReturn],
        on_run_and_children_complete: None = None,
        **options: Unpack[ParentTaskOptionArgs],
    ) -> DurableTask[InT, ParentOutput[Any]]: ...

    @overload
    def parent_task(
        self,
        *,
        run_parent: Callable[[TaskContext], AnyParentReturn],
        on_run_and_children_complete: None = None,
        **options: Unpack[ParentTaskOptionArgs],
    ) -> DurableTask[None, ParentOutput[Any]]: ...

    @overload
    def parent_task(
        self,
        *,
        run_parent: Callable[[TaskContext, InT], AnyParentReturn],
        on_run_and_children_complete: CompletionSpec[Any, Any, Awaitable[C]],
        **options: Unpack[ParentTaskOptionArgs],
    ) -> DurableTask[InT, C]: ...

    @overload
    def parent_task(
        self,
        *,
        run_parent: Callable[[TaskContext, InT], AnyParentReturn],
        on_run_and_children_complete: CompletionSpec[Any, Any, C],
        **options: Unpack[ParentTaskOptionArgs],
    ) -> DurableTask[InT, C]: ...

    @overload
    def parent_task(
        self,
        *,
        run_parent: Callable[[TaskContext, InT], AnyParentReturn],
        on_run_and_children_complete: _AnyCompletion,
        **options: Unpack[ParentTaskOptionArgs],
    ) -> DurableTask[InT, Any]: ...

    @overload
    def parent_task(
        self,
        *,
        run_parent: Callable[[TaskContext], AnyParentReturn],
        on_run_and_children_complete: CompletionSpec[Any, Any, Awaitable[C]],
        **options: Unpack[ParentTaskOptionArgs],
    ) -> DurableTask[None, C]: ...

    @overload
    def parent_task(
        self,
        *,
        run_parent: Callable[[TaskContext], AnyParentReturn],
        on_run_and_children_complete: CompletionSpec[Any, Any, C],
        **options: Unpack[ParentTaskOptionArgs],
    ) -> DurableTask[None, C]: ...

    @overload
    def parent_task(
        self,
        *,
        run_parent: Callable[[TaskContext], AnyParentReturn],
        on_run_and_children_complete: _AnyCompletion,
        **options: Unpack[ParentTaskOptionArgs],
    ) -> DurableTask[None, Any]: ...

    @overload
    def parent_task(
        self,
        *,
        run_parent: None = None,
        on_run_and_children_complete: None = None,
        **options: Unpack[ParentTaskOptionArgs],
    ) -> ParentDecorator: ...

    @overload
    def parent_task(
        self,
        *,
        run_parent: None = None,
        on_run_and_children_complete: CompletionSpec[Any, Any, Awaitable[C]],
        **options: Unpack[ParentTaskOptionArgs],
    ) -> CompletedParentDecorator[C]: ...

    @overload
    def parent_task(
        self,
        *,
        run_parent: None = None,
        on_run_and_children_complete: CompletionSpec[Any, Any, C],
        **options: Unpack[ParentTaskOptionArgs],
    ) -> CompletedParentDecorator[C]: ...

    @overload
    def parent_task(
        self,
        *,
        run_parent: None = None,
        on_run_and_children_complete: _AnyCompletion,
        **options: Unpack[ParentTaskOptionArgs],
    ) -> CompletedParentDecorator[Any]: ...

    def parent_task(
        self,
        *,
        id: str,
        timeout_ms: int,
        max_retry_attempts: int | None = None,
        sleep_ms_before_attempt: int | None = None,
        retry: RetryPolicy | None = None,
        run_parent: RunFn | None = None,
        on_run_and_children_complete: Mapping[str, Any] | None = None,
        children_policy: ChildrenPolicy = "fail_fast",
    ) -> Any:
        """Define a parent task: ``run_parent(ctx, input)`` returns ``{"output", "children"}``.

        The children run in parallel. Without ``on_run_and_children_complete`` the parent's
        output is ``{"output": ..., "children_outputs": [...]}`` (a
        :class:`~durable_execution.ParentOutput`, typed by ``run_parent``'s output when it
        returns a :class:`~durable_execution.ParentResult`). ``on_run_and_children_complete``
        (a mapping of the options of ``task`` or ``parent_task``, nesting to any depth) runs
        after them and its output becomes the parent's output (typed by its ``run`` function
        when mypy can infer it). Options as for :meth:`task`. Without ``run_parent``,
        returns a decorator.

        ``children_policy``: ``"fail_fast"`` (the default) fails the parent as soon as a child
        does not complete; with ``"all_settled"`` the parent waits for every child, whatever
        its end, and the completion task's ``value.children`` (or, without one, the output's
        ``children``) tells how each ended (see :mod:`durable_execution.children_policy`).
        """
        options = task_options(id, timeout_ms, max_retry_attempts, sleep_ms_before_attempt, retry)
        return self._define_parent(
            options, run_parent, on_run_and_children_complete, children_policy
        )

    # -- sequential_tasks --------------------------------------------------------------------

    @overload
    def sequential_tasks(
        self, t1: DurableTask[InT, OutT], /, **options: Unpack[SequenceOptionArgs]
    ) -> DurableTask[InT, OutT]: ...

    @overload
    def sequential_tasks(
        self,
        t1: DurableTask[InT, S1],
        t2: DurableTask[S1, OutT],
        /,
        **options: Unpack[SequenceOptionArgs],
    ) -> DurableTask[InT, OutT]: ...

    @overload
    def sequential_tasks(
        self,
        t1: DurableTask[InT, S1],
        t2: DurableTask[S1, S2],
        t3: DurableTask[S2, OutT],
        /,
        **options: Unpack[SequenceOptionArgs],
    ) -> DurableTask[InT, OutT]: ...

    @overload
    def sequential_tasks(
        self,
        t1: DurableTask[InT, S1],
        t2: DurableTask[S1, S2],
        t3: DurableTask[S2, S3],
        t4: DurableTask[S3, OutT],
        /,
        **options: Unpack[SequenceOptionArgs],
    ) -> DurableTask[InT, OutT]: ...

    @overload
    def sequential_tasks(
        self,
        t1: DurableTask[InT, S1],
        t2: DurableTask[S1, S2],
        t3: DurableTask[S2, S3],
        t4: DurableTask[S3, S4],
        t5: DurableTask[S4, OutT],
        /,
        **options: Unpack[SequenceOptionArgs],
    ) -> DurableTask[InT, OutT]: ...

    @overload
    def sequential_tasks(
        self,
        t1: DurableTask[InT, S1],
        t2: DurableTask[S1, S2],
        t3: DurableTask[S2, S3],
        t4: DurableTask[S3, S4],
        t5: DurableTask[S4, S5],
        t6: DurableTask[S5, OutT],
        /,
        **options: Unpack[SequenceOptionArgs],
    ) -> DurableTask[InT, OutT]: ...

    @overload
    def sequential_tasks(
        self,
        t1: DurableTask[InT, Any],
        t2: DurableTask[Any, Any],
        t3: DurableTask[Any, Any],
        t4: DurableTask[Any, Any],
        t5: DurableTask[Any, Any],
        t6: DurableTask[Any, Any],
        t7: DurableTask[Any, Any],
        /,
        *tasks: DurableTask[Any, Any],
        **options: Unpack[SequenceOptionArgs],
    ) -> DurableTask[InT, Any]: ...

    def sequential_tasks(
        self,
        *tasks: DurableTask[Any, Any],
        id: str | None = None,
        timeout_ms: int = SEQUENCE_TIMEOUT_MS,
        retry: RetryPolicy | None = None,
    ) -> Any:
        """A task that runs ``tasks`` one after the other, each getting the previous output.

        Its output is the last task's output; mypy checks that each task takes the previous
        one's output (up to six tasks; past six, only the first input is typed). Without
        ``id``, the id is derived from the members' ids. It is a parent task whose children
        are the steps, added one at a time as each completes (``child_execution_ids`` lists
        those started so far); a step that does not complete makes it ``children_failed``.
        ``timeout_ms`` bounds its own short run (which starts the first step), not the steps;
        ``retry`` retries that run (each step retries by its own options).
        """
        return self._define_sequence(tasks, id, timeout_ms, retry)

    # -- looping_task ------------------------------------------------------------------------

    @overload
    def looping_task(
        self,
        *,
        id: str,
        iteration_task: DurableTask[InT, IterationResult[R]],
        max_iterations: int,
        sleep_ms_between_iterations: int = 0,
        timeout_ms: int = SEQUENCE_TIMEOUT_MS,
    ) -> DurableTask[InT, LoopOutput[R]]: ...

    @overload
    def looping_task(
        self,
        *,
        id: str,
        iteration_task: DurableTask[InT, Any],
        max_iterations: int,
        sleep_ms_between_iterations: int = 0,
        timeout_ms: int = SEQUENCE_TIMEOUT_MS,
    ) -> DurableTask[InT, LoopOutput[Any]]: ...

    def looping_task(
        self,
        *,
        id: str,
        iteration_task: DurableTask[Any, Any],
        max_iterations: int,
        sleep_ms_between_iterations: int = 0,
        timeout_ms: int = SEQUENCE_TIMEOUT_MS,
    ) -> Any:
        """A task that runs ``iteration_task`` on its input until it returns
        ``{"is_done": True, "output": x}``, at most ``max_iterations`` times (1 to
        :data:`~durable_execution.checks.MAX_ITERATIONS`), waiting
        ``sleep_ms_between_iterations`` (in storage) between two iterations.

        Its output is ``{"is_success": True, "output": x}``, or ``{"is_success": False}`` when
        no iteration was done. ``{"is_done": False}`` asks for another iteration; any other
        output fails the loop, as does an iteration that does not complete (after its own
        retries). Each iteration is a child execution of task ``<id>_iteration`` (the loop's
        copy of ``iteration_task``, with its options) on the loop's input: storage grows by one
        execution per iteration and the tree does not deepen. ``timeout_ms`` bounds the
        loop's own short run (which starts the first iteration).
        """
        return self._define_loop(
            id, iteration_task, max_iterations, sleep_ms_between_iterations, timeout_ms
        )


def _derived_sequence_id(tasks: tuple[DurableTask[Any, Any], ...]) -> str:
    digest = hashlib.sha256("\x00".join(t.id for t in tasks).encode()).hexdigest()[:16]
    return f"sequential_{digest}"


def _run_first(task: DurableTask[Any, Any]) -> RunFn:
    async def run_parent(ctx: TaskContext, value: Any) -> dict[str, Any]:
        return {"output": None, "children": [ChildTask(task, value)]}

    return run_parent
