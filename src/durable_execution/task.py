"""Task definitions: :class:`DurableTask`, :class:`ChildTask` and option validation (no I/O)."""

from __future__ import annotations

import enum
import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

from durable_execution.checks import MAX_DURATION_MS, MAX_RETRY_ATTEMPTS, check_int
from durable_execution.children_policy import ChildrenPolicy, check_children_policy
from durable_execution.context import TaskContext
from durable_execution.ids import validate_task_id
from durable_execution.retry import RetryPolicy
from durable_execution.validation import InputValidator

__all__ = [
    "AnyChildTask",
    "ChildTask",
    "DurableTask",
    "LoopSpec",
    "TaskKind",
    "TaskOptions",
    "task_options",
]

InputT_co = TypeVar("InputT_co", covariant=True)
InputT_contra = TypeVar("InputT_contra", contravariant=True)
OutputT_co = TypeVar("OutputT_co", covariant=True)

RunFunction = Callable[..., Any]


class TaskKind(enum.StrEnum):
    """How a task runs.

    ``task``: ``run`` returns the output. ``parent``: ``run_parent`` returns an output and
    children that run in parallel. ``sequence``: a parent whose children are its ``steps``, run
    one after the other (``sequential_tasks``). ``loop``: a parent whose children are the
    iterations of one task, one after the other, until one says it is done (``looping_task``).
    ``sleeping``: nothing runs; an execution sleeps in storage until a wake-up gives its output
    or error, or it times out (``sleeping_task``).
    """

    TASK = "task"
    PARENT = "parent"
    SEQUENCE = "sequence"
    LOOP = "loop"
    SLEEPING = "sleeping"

    @property
    def has_children(self) -> bool:
        """Whether executions of this kind wait for children (parents, sequences, loops)."""
        return self is not TaskKind.TASK and self is not TaskKind.SLEEPING


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """The options every kind of task takes."""

    id: str
    """1-255 characters of ``[A-Za-z0-9_]``, unique per executor, stable across restarts."""
    timeout_ms: int
    """Bound on one attempt of ``run`` / ``run_parent`` (not the wait for children): 1 ms to
    :data:`~durable_execution.checks.MAX_DURATION_MS` (10 years)."""
    max_retry_attempts: int = 0
    """Retries after the first attempt: at most ``max_retry_attempts + 1`` runs (0 to
    :data:`~durable_execution.checks.MAX_RETRY_ATTEMPTS`, a million)."""
    sleep_ms_before_attempt: int = 0
    """Delay before each attempt, the first one included (0 to 10 years)."""
    retry: RetryPolicy | None = None
    """How failed attempts are retried (attempts, back-off, which errors); replaces the
    shorthand ``max_retry_attempts`` / ``sleep_ms_before_attempt``, which are then 0."""

    def __post_init__(self) -> None:
        where = f" for task {validate_task_id(self.id)!r}"
        if self.retry is not None and not isinstance(self.retry, RetryPolicy):
            raise ValueError(
                f"Invalid option retry={self.retry!r}{where}: expected a RetryPolicy or None"
            )
        check_int("timeout_ms", self.timeout_ms, minimum=1, maximum=MAX_DURATION_MS, where=where)
        check_int(
            "max_retry_attempts",
            self.max_retry_attempts,
            minimum=0,
            maximum=MAX_RETRY_ATTEMPTS,
            where=where,
        )
        check_int(
            "sleep_ms_before_attempt",
            self.sleep_ms_before_attempt,
            minimum=0,
            maximum=MAX_DURATION_MS,
            where=where,
        )


def task_options(
    id: str,
    timeout_ms: int,
    max_retry_attempts: int | None = None,
    sleep_ms_before_attempt: int | None = None,
    retry: RetryPolicy | None = None,
) -> TaskOptions:
    """The options of a definition, where the shorthand and ``retry`` exclude each other.

    The shorthand is ``None`` when the caller did not give it: giving it (even 0) together
    with ``retry`` is an error, since the two would say different things.
    """
    if retry is not None and (
        max_retry_attempts is not None or sleep_ms_before_attempt is not None
    ):
        raise ValueError(
            f"Task {id!r}: give either retry=RetryPolicy(...) or the shorthand "
            "max_retry_attempts / sleep_ms_before_attempt, not both"
        )
    return TaskOptions(
        id,
        timeout_ms,
        0 if max_retry_attempts is None else max_retry_attempts,
        0 if sleep_ms_before_attempt is None else sleep_ms_before_attempt,
        retry,
    )


@dataclass(frozen=True, slots=True)
class LoopSpec:
    """What a looping task runs: ``iteration`` (its own copy of the iteration task) up to
    ``max_iterations`` times, ``sleep_ms_between_iterations`` apart."""

    iteration: DurableTask[Any, Any]
    max_iterations: int
    sleep_ms_between_iterations: int


def _positional_arity(fn: Callable[..., Any]) -> int:
    """How ``fn`` is called: 2 for ``(ctx, input)``, 1 for ``(ctx)``.

    0 when it can be called neither way: it takes no positional argument, needs more than two,
    or needs a keyword-only argument.
    """
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without a signature: assume (ctx, input)
        return 2
    positional = required = 0
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            return 2 if required <= 2 else 0
        if parameter.kind in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            positional += 1
            required += parameter.default is inspect.Parameter.empty
        elif (
            parameter.kind is inspect.Parameter.KEYWORD_ONLY
            and parameter.default is inspect.Parameter.empty
        ):
            return 0
    return 0 if required > 2 else min(positional, 2)


def _is_async(fn: Callable[..., Any]) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - callable objects with async __call__
    return call is not None and inspect.iscoroutinefunction(call)


class DurableTask(Generic[InputT_contra, OutputT_co]):
    """A task registered on an executor. Enqueue it, or return it as a child of a parent task.

    ``DurableTask[In, Out]``: ``enqueue_task`` and ``ChildTask`` take an ``In``, executions
    carry an ``Out``. Both are inferred from the run function; annotate recursive tasks (whose
    run function names the task) yourself. A task that accepts any ``In`` also accepts a
    narrower one, and a task whose output is an ``Out`` is also a task of a wider output: a
    ``DurableTask[object, bool]`` is a ``DurableTask[int, int]``.
    """

    __slots__ = (
        "children_policy",
        "completion",
        "is_async",
        "is_completion",
        "kind",
        "loop",
        "options",
        "parent_input_validator",
        "run_fn",
        "steps",
        "takes_input",
        "validate_on_enqueue",
        "validator",
    )

    def __init__(
        self,
        *,
        options: TaskOptions,
        kind: TaskKind,
        run_fn: object,
        validator: InputValidator | None,
        completion: DurableTask[Any, Any] | None,
        is_completion: bool,
        steps: tuple[DurableTask[Any, Any], ...] | None = None,
        validate_on_enqueue: bool | None = None,
        parent_input_validator: InputValidator | None = None,
        loop: LoopSpec | None = None,
        children_policy: ChildrenPolicy = "fail_fast",
    ) -> None:
        if not callable(run_fn):
            name = "run" if kind is TaskKind.TASK else "run_parent"
            raise ValueError(f"Task {options.id!r}: {name} must be callable, got {run_fn!r}")
        arity = _positional_arity(run_fn)
        if arity == 0:
            raise ValueError(
                f"Task {options.id!r}: the run function must be callable as run(ctx, input) "
                f"or run(ctx), got {run_fn!r}"
            )
        self.options = options
        self.kind = kind
        self.run_fn = run_fn
        self.takes_input = arity >= 2
        self.is_async = _is_async(run_fn)
        self.validator = validator
        # A completion task's own input (the value) is not validated, but the parent's input
        # in it is, with the parent's validator: ``value.input`` is then the validated value.
        self.parent_input_validator = parent_input_validator
        # Whether enqueue_task runs ``validator`` before storing; ``None``: the executor's
        # ``validate_on_enqueue`` option decides.
        self.validate_on_enqueue = validate_on_enqueue
        self.completion = completion
        self.is_completion = is_completion
        if (kind is TaskKind.SEQUENCE) != (steps is not None):
            raise ValueError(f"Task {options.id!r}: steps go with the sequence kind, and only it")
        # The tasks of a sequence (``sequential_tasks``), run one after the other as its
        # children; ``None`` for every other kind.
        self.steps = steps
        if (kind is TaskKind.LOOP) != (loop is not None):
            raise ValueError(f"Task {options.id!r}: a loop goes with the loop kind, and only it")
        # What a looping task iterates (``looping_task``); ``None`` for every other kind.
        self.loop = loop
        # How a parent treats a child that does not complete (see children_policy.py).
        self.children_policy: ChildrenPolicy = check_children_policy(
            children_policy, where=f" of task {options.id!r}"
        )
        if kind is not TaskKind.PARENT and children_policy != "fail_fast":
            raise ValueError(f"Task {options.id!r}: children_policy goes with parent tasks only")

    @property
    def id(self) -> str:
        """The task id."""
        return self.options.id

    @property
    def task_id(self) -> str:
        """The task id (alias of :attr:`id`)."""
        return self.options.id

    @property
    def timeout_ms(self) -> int:
        return self.options.timeout_ms

    def call(self, ctx: TaskContext, value: Any) -> Any:
        """Call the run function with the arguments it accepts."""
        return self.run_fn(ctx, value) if self.takes_input else self.run_fn(ctx)

    def __repr__(self) -> str:
        return f"DurableTask(id={self.id!r}, kind={self.kind.value})"


class AnyChildTask:
    """The base class of every :class:`ChildTask`, whatever its input type.

    Not generic on purpose: a list of children annotated with it leaves each
    ``ChildTask(task, input)`` free to check its input against its own task.
    """

    __slots__ = ()


@dataclass(frozen=True, slots=True, init=False)
class ChildTask(AnyChildTask, Generic[InputT_co]):
    """A child returned by ``run_parent``: the task, its input, its own attributes and its
    delay (same as a ``{"task": ..., "input": ..., "attributes": ..., "delay_ms": ...}``
    mapping).

    ``ChildTask(task, input)`` takes only an input the task accepts (its ``In``); a task whose
    run function takes no input may be given none. The child's attributes are its parent's,
    overridden key by key by ``attributes``. ``delay_ms`` (0 to 10 years) makes it a durable
    timer: the child is stored ``ready`` to start ``delay_ms`` after its parent's run ended,
    and nothing waits for it in any executor meanwhile.
    """

    task: DurableTask[Any, Any]
    input: InputT_co | None
    attributes: Mapping[str, Any] | None
    delay_ms: int

    @overload
    def __init__(
        self: ChildTask[None],
        task: DurableTask[None, object],
        *,
        attributes: Mapping[str, Any] | None = None,
        delay_ms: int = 0,
    ) -> None: ...

    @overload
    def __init__(
        self,
        task: DurableTask[InputT_co, object],
        input: InputT_co,
        attributes: Mapping[str, Any] | None = None,
        *,
        delay_ms: int = 0,
    ) -> None: ...

    def __init__(
        self,
        task: DurableTask[Any, object],
        input: Any = None,
        attributes: Mapping[str, Any] | None = None,
        *,
        delay_ms: int = 0,
    ) -> None:
        if type(delay_ms) is not int or not 0 <= delay_ms <= MAX_DURATION_MS:
            where = f" for a child of task {getattr(task, 'id', task)!r}"
            check_int("delay_ms", delay_ms, minimum=0, maximum=MAX_DURATION_MS, where=where)
        object.__setattr__(self, "task", task)
        object.__setattr__(self, "input", input)
        object.__setattr__(self, "attributes", attributes)
        object.__setattr__(self, "delay_ms", delay_ms)
