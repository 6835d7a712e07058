"""The builders that ``input_schema(...)`` and ``validate_input(...)`` return.

``ValidatedTaskDefiner[Raw, Parsed]`` defines tasks whose run function gets the validated input
(``Parsed``) while ``enqueue_task`` and ``ChildTask`` take what the validator accepts
(``Raw``). What is stored is always the input as given; each run validates it again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar, Unpack, overload

from durable_execution.children_policy import ChildrenPolicy
from durable_execution.context import TaskContext
from durable_execution.definition_types import (
    AnyParentReturn,
    InputRun,
    ParentReturn,
    ParentTaskOptionArgs,
    SequenceOptionArgs,
    TaskOptionArgs,
    ValidatedCompletedParentDecorator,
    ValidatedParentDecorator,
    ValidatedTaskDecorator,
)
from durable_execution.definitions import SEQUENCE_TIMEOUT_MS, Definitions, RunFn
from durable_execution.retry import RetryPolicy
from durable_execution.shapes import CompletionSpec, ParentOutput
from durable_execution.task import DurableTask, task_options

__all__ = ["ValidatedTaskDefiner"]

RawT = TypeVar("RawT")
ParsedT = TypeVar("ParsedT")
OutT = TypeVar("OutT")
R = TypeVar("R")
C = TypeVar("C")
S1 = TypeVar("S1")
S2 = TypeVar("S2")
S3 = TypeVar("S3")
S4 = TypeVar("S4")
S5 = TypeVar("S5")


class ValidatedTaskDefiner(Definitions, Generic[RawT, ParsedT]):
    """Defines tasks that validate their input before each run (see the module docstring).

    The methods are those of the executor (``task``, ``parent_task``, ``sequential_tasks``),
    with run functions that take the validated value.
    """

    # -- task --------------------------------------------------------------------------------

    @overload
    def task(
        self,
        *,
        run: Callable[[TaskContext, ParsedT], Awaitable[OutT]],
        **options: Unpack[TaskOptionArgs],
    ) -> DurableTask[RawT, OutT]: ...

    @overload
    def task(
        self, *, run: Callable[[TaskContext, ParsedT], OutT], **options: Unpack[TaskOptionArgs]
    ) -> DurableTask[RawT, OutT]: ...

    @overload
    def task(
        self, *, run: Callable[[TaskContext], Awaitable[OutT]], **options: Unpack[TaskOptionArgs]
    ) -> DurableTask[RawT, OutT]: ...

    @overload
    def task(
        self, *, run: Callable[[TaskContext], OutT], **options: Unpack[TaskOptionArgs]
    ) -> DurableTask[RawT, OutT]: ...

    @overload
    def task(
        self, *, run: None = None, **options: Unpack[TaskOptionArgs]
    ) -> ValidatedTaskDecorator[RawT, ParsedT]: ...

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
        """Define a task whose ``run(ctx, input)`` gets the validated input.

        Same options as ``DurableExecutor.task``; without ``run``, returns a decorator.
        """
        options = task_options(id, timeout_ms, max_retry_attempts, sleep_ms_before_attempt, retry)
        return self._define_task(options, run)

    # -- parent_task -------------------------------------------------------------------------

    @overload
    def parent_task(
        self,
        *,
        run_parent: InputRun[ParsedT, ParentReturn[R]],
        on_run_and_children_complete: None = None,
        **options: Unpack[ParentTaskOptionArgs],
    ) -> DurableTask[RawT, ParentOutput[R]]: ...

    @overload
    def parent_task(
        self,
        *,
        run_parent: InputRun[ParsedT, AnyParentReturn],
        on_run_and_children_complete: None = None,
        **options: Unpack[ParentTaskOptionArgs],
    ) -> DurableTask[RawT, ParentOutput[Any]]: ...

    @overload
    def parent_task(
        self,
        *,
        run_parent: InputRun[ParsedT, AnyParentReturn],
        on_run_and_children_complete: CompletionSpec[ParsedT, Any, Awaitable[C]],
        **options: Unpack[ParentTaskOptionArgs],
    ) -> DurableTask[RawT, C]: ...

    @overload
    def parent_task(
        self,
        *,
        run_parent: InputRun[ParsedT, AnyParentReturn],
        on_run_and_children_complete: CompletionSpec[ParsedT, Any, C],
        **options: Unpack[ParentTaskOptionArgs],
    ) -> DurableTask[RawT, C]: ...

    @overload
    def parent_task(
        self,
        *,
        run_parent: InputRun[ParsedT, AnyParentReturn],
        on_run_and_children_complete: Mapping[str, Any],
        **options: Unpack[ParentTaskOptionArgs],
    ) -> DurableTask[RawT, Any]: ...

    @overload
    def parent_task(
        self,
        *,
        run_parent: None = None,
        on_run_and_children_complete: None = None,
        **options: Unpack[ParentTaskOptionArgs],
    ) -> ValidatedParentDecorator[RawT, ParsedT]: ...

    @overload
    def parent_task(
        self,
        *,
        run_parent: None = None,
        on_run_and_children_complete: CompletionSpec[ParsedT, Any, Awaitable[C]],
        **options: Unpack[ParentTaskOptionArgs],
    ) -> ValidatedCompletedParentDecorator[RawT, ParsedT, C]: ...

    @overload
    def parent_task(
        self,
        *,
        run_parent: None = None,
        on_run_and_children_complete: CompletionSpec[ParsedT, Any, C],
        **options: Unpack[ParentTaskOptionArgs],
    ) -> ValidatedCompletedParentDecorator[RawT, ParsedT, C]: ...

    @overload
    def parent_task(
        self,
        *,
        run_parent: None = None,
        on_run_and_children_complete: Mapping[str, Any],
        **options: Unpack[ParentTaskOptionArgs],
    ) -> ValidatedCompletedParentDecorator[RawT, ParsedT, Any]: ...

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
        """Define a parent task whose ``run_parent(ctx, input)`` gets the validated input.

        Same options as ``DurableExecutor.parent_task``. The completion task's
        ``value.input`` is the validated input too. Without ``run_parent``, returns a
        decorator.
        """
        options = task_options(id, timeout_ms, max_retry_attempts, sleep_ms_before_attempt, retry)
        return self._define_parent(
            options, run_parent, on_run_and_children_complete, children_policy
        )

    # -- sequential_tasks --------------------------------------------------------------------

    @overload
    def sequential_tasks(
        self, t1: DurableTask[ParsedT, OutT], /, **options: Unpack[SequenceOptionArgs]
    ) -> DurableTask[RawT, OutT]: ...

    @overload
    def sequential_tasks(
        self,
        t1: DurableTask[ParsedT, S1],
        t2: DurableTask[S1, OutT],
        /,
        **options: Unpack[SequenceOptionArgs],
    ) -> DurableTask[RawT, OutT]: ...

    @overload
    def sequential_tasks(
        self,
        t1: DurableTask[ParsedT, S1],
        t2: DurableTask[S1, S2],
        t3: DurableTask[S2, OutT],
        /,
        **options: Unpack[SequenceOptionArgs],
    ) -> DurableTask[RawT, OutT]: ...

    @overload
    def sequential_tasks(
        self,
        t1: DurableTask[ParsedT, S1],
        t2: DurableTask[S1, S2],
        t3: DurableTask[S2, S3],
        t4: DurableTask[S3, OutT],
        /,
        **options: Unpack[SequenceOptionArgs],
    ) -> DurableTask[RawT, OutT]: ...

    @overload
    def sequential_tasks(
        self,
        t1: DurableTask[ParsedT, S1],
        t2: DurableTask[S1, S2],
        t3: DurableTask[S2, S3],
        t4: DurableTask[S3, S4],
        t5: DurableTask[S4, OutT],
        /,
        **options: Unpack[SequenceOptionArgs],
    ) -> DurableTask[RawT, OutT]: ...

    @overload
    def sequential_tasks(
        self,
        t1: DurableTask[ParsedT, S1],
        t2: DurableTask[S1, S2],
        t3: DurableTask[S2, S3],
        t4: DurableTask[S3, S4],
        t5: DurableTask[S4, S5],
        t6: DurableTask[S5, OutT],
        /,
        **options: Unpack[SequenceOptionArgs],
    ) -> DurableTask[RawT, OutT]: ...

    @overload
    def sequential_tasks(
        self,
        t1: DurableTask[ParsedT, Any],
        t2: DurableTask[Any, Any],
        t3: DurableTask[Any, Any],
        t4: DurableTask[Any, Any],
        t5: DurableTask[Any, Any],
        t6: DurableTask[Any, Any],
        t7: DurableTask[Any, Any],
        /,
        *tasks: DurableTask[Any, Any],
        **options: Unpack[SequenceOptionArgs],
    ) -> DurableTask[RawT, Any]: ...

    def sequential_tasks(
        self,
        *tasks: DurableTask[Any, Any],
        id: str | None = None,
        timeout_ms: int = SEQUENCE_TIMEOUT_MS,
        retry: RetryPolicy | None = None,
    ) -> Any:
        """A sequence (see ``DurableExecutor.sequential_tasks``) that validates its input;
        its first task gets the validated input."""
        return self._define_sequence(tasks, id, timeout_ms, retry)
