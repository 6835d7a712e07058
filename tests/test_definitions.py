"""Defining tasks on an executor that is never started: ids, options, forms, arity, errors."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

import pydantic
import pytest

from durable_execution import (
    ChildTask,
    DurableExecutor,
    DurableTask,
    ExecutorShutdownError,
    JsonSerializer,
    TaskContext,
)
from durable_execution.ids import TASK_ID_PATTERN
from durable_execution.storage.memory import InMemoryStorage
from durable_execution.task import TaskKind

MIB = 1024 * 1024


@pytest.fixture
def ex() -> DurableExecutor:
    return DurableExecutor(InMemoryStorage())


def make_ctx(task_id: str = "t") -> TaskContext:
    return TaskContext(
        task_id=task_id,
        execution_id="te_" + "0" * 32,
        attempt=0,
        prev_error=None,
        root_execution_id=None,
        parent_execution_id=None,
        shutdown_event=threading.Event(),
    )


def run(ctx: TaskContext, input: Any) -> Any:
    return input


def run_parent(ctx: TaskContext, input: Any) -> Any:
    return {"output": input}


class Name(pydantic.BaseModel):
    name: str


# -- task ids --------------------------------------------------------------------------------

BAD_IDS: list[Any] = ["", "a" * 256, "a-b", "a b", "cost$", "me@home", "é", "a\n", 5, None, b"ab"]


@pytest.mark.parametrize("bad_id", BAD_IDS, ids=[repr(i)[:12] for i in BAD_IDS])
def test_invalid_task_id_is_rejected_and_named(ex: DurableExecutor, bad_id: Any) -> None:
    with pytest.raises(ValueError, match="Invalid task id") as info:
        ex.task(id=bad_id, timeout_ms=10, run=run)
    assert repr(bad_id) in str(info.value)


@pytest.mark.parametrize("bad_id", ["", "a-b", "x" * 256])
def test_invalid_task_id_is_rejected_for_every_kind(ex: DurableExecutor, bad_id: str) -> None:
    with pytest.raises(ValueError, match="Invalid task id"):
        ex.parent_task(id=bad_id, timeout_ms=10, run_parent=run_parent)
    with pytest.raises(ValueError, match="Invalid task id"):
        ex.parent_task(
            id="p",
            timeout_ms=10,
            run_parent=run_parent,
            on_run_and_children_complete={"id": bad_id, "timeout_ms": 10, "run": run},
        )
    with pytest.raises(ValueError, match="Invalid task id"):
        ex.validate_input(lambda value: value).task(id=bad_id, timeout_ms=10, run=run)


@pytest.mark.parametrize("good_id", ["a" * 255, "A", "_", "Task_09_zZ", "0"])
def test_valid_task_ids(ex: DurableExecutor, good_id: str) -> None:
    task = ex.task(id=good_id, timeout_ms=10, run=run)
    assert task.id == good_id
    assert task.task_id == good_id


# -- task options ----------------------------------------------------------------------------

BAD_TASK_OPTIONS: list[tuple[str, Any]] = [
    ("timeout_ms", 0),
    ("timeout_ms", -5),
    ("timeout_ms", 1.5),
    ("timeout_ms", "100"),
    ("timeout_ms", True),
    ("timeout_ms", None),
    ("max_retry_attempts", -1),
    ("max_retry_attempts", True),
    ("max_retry_attempts", 2.0),
    ("sleep_ms_before_attempt", -1),
    ("sleep_ms_before_attempt", False),
    ("sleep_ms_before_attempt", "0"),
]


@pytest.mark.parametrize(("option", "value"), BAD_TASK_OPTIONS)
def test_bad_task_option_names_task_and_option(
    ex: DurableExecutor, option: str, value: Any
) -> None:
    options: dict[str, Any] = {"timeout_ms": 10, option: value}
    with pytest.raises(ValueError, match=f"Invalid option {option}=.* for task 'bad_one'"):
        ex.task(id="bad_one", run=run, **options)
    with pytest.raises(ValueError, match=f"Invalid option {option}=.* for task 'bad_one'"):
        ex.parent_task(id="bad_one", run_parent=run_parent, **options)
    with pytest.raises(ValueError, match=f"Invalid option {option}=.* for task 'bad_fin'"):
        ex.parent_task(
            id="p",
            timeout_ms=10,
            run_parent=run_parent,
            on_run_and_children_complete={"id": "bad_fin", "run": run, **options},
        )


def test_bad_option_is_refused_before_the_decorator_is_returned(ex: DurableExecutor) -> None:
    with pytest.raises(ValueError, match="timeout_ms"):
        ex.task(id="t", timeout_ms=0)


def test_options_are_kept(ex: DurableExecutor) -> None:
    task = ex.task(id="t", timeout_ms=1, max_retry_attempts=3, sleep_ms_before_attempt=0, run=run)
    assert task.timeout_ms == 1
    assert task.options.max_retry_attempts == 3
    assert task.options.sleep_ms_before_attempt == 0
    defaults = ex.task(id="d", timeout_ms=5, run=run).options
    assert (defaults.max_retry_attempts, defaults.sleep_ms_before_attempt) == (0, 0)


# -- duplicates ------------------------------------------------------------------------------


def test_duplicate_id_is_rejected(ex: DurableExecutor) -> None:
    first = ex.task(id="same", timeout_ms=10, run=run)
    with pytest.raises(ValueError, match="'same' is already defined"):
        ex.task(id="same", timeout_ms=10, run=run)
    with pytest.raises(ValueError, match="'same' is already defined"):
        ex.parent_task(id="same", timeout_ms=10, run_parent=run_parent)
    with pytest.raises(ValueError, match="'same' is already defined"):
        ex.input_schema(Name).task(id="same", timeout_ms=10, run=run)
    assert first.id == "same"


def test_duplicate_completion_id_registers_nothing(ex: DurableExecutor) -> None:
    ex.task(id="taken", timeout_ms=10, run=run)
    with pytest.raises(ValueError, match="'taken' is already defined"):
        ex.parent_task(
            id="parent",
            timeout_ms=10,
            run_parent=run_parent,
            on_run_and_children_complete={"id": "taken", "timeout_ms": 10, "run": run},
        )
    fixed = ex.parent_task(
        id="parent",
        timeout_ms=10,
        run_parent=run_parent,
        on_run_and_children_complete={"id": "parent_done", "timeout_ms": 10, "run": run},
    )
    assert fixed.completion is not None
    assert fixed.completion.id == "parent_done"


def test_duplicate_nested_completion_id_registers_nothing(ex: DurableExecutor) -> None:
    ex.task(id="taken", timeout_ms=10, run=run)
    spec = {
        "id": "outer_done",
        "timeout_ms": 10,
        "run_parent": run_parent,
        "on_run_and_children_complete": {"id": "taken", "timeout_ms": 10, "run": run},
    }
    with pytest.raises(ValueError, match="'taken' is already defined"):
        ex.parent_task(
            id="parent", timeout_ms=10, run_parent=run_parent, on_run_and_children_complete=spec
        )
    # Neither the parent nor its outer completion task was kept.
    ex.task(id="parent", timeout_ms=10, run=run)
    ex.task(id="outer_done", timeout_ms=10, run=run)


@pytest.mark.parametrize(
    "spec",
    [
        {"id": "p", "timeout_ms": 10, "run": run},
        {
            "id": "done",
            "timeout_ms": 10,
            "run_parent": run_parent,
            "on_run_and_children_complete": {"id": "done", "timeout_ms": 10, "run": run},
        },
    ],
    ids=["same as parent", "same as nested"],
)
def test_duplicate_ids_within_one_definition(ex: DurableExecutor, spec: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="already defined"):
        ex.parent_task(
            id="p", timeout_ms=10, run_parent=run_parent, on_run_and_children_complete=spec
        )
    ex.task(id="p", timeout_ms=10, run=run)


def test_completion_task_ids_are_taken(ex: DurableExecutor) -> None:
    ex.parent_task(
        id="p",
        timeout_ms=10,
        run_parent=run_parent,
        on_run_and_children_complete={"id": "p_done", "timeout_ms": 10, "run": run},
    )
    with pytest.raises(ValueError, match="'p_done' is already defined"):
        ex.task(id="p_done", timeout_ms=10, run=run)


def test_same_id_on_two_executors_is_fine() -> None:
    first = DurableExecutor(InMemoryStorage()).task(id="shared", timeout_ms=10, run=run)
    second = DurableExecutor(InMemoryStorage()).task(id="shared", timeout_ms=10, run=run)
    assert first is not second
    assert first.id == second.id


# -- the definition forms --------------------------------------------------------------------


def _upper_name(value: Any) -> Any:
    return {"name": value["name"].upper()}


Define = Callable[[DurableExecutor, str, Any], Any]

FORMS: dict[str, tuple[Define, TaskKind]] = {
    "task": (lambda ex, i, fn: ex.task(id=i, timeout_ms=10, run=fn), TaskKind.TASK),
    "parent_task": (
        lambda ex, i, fn: ex.parent_task(id=i, timeout_ms=10, run_parent=fn),
        TaskKind.PARENT,
    ),
    "input_schema.task": (
        lambda ex, i, fn: ex.input_schema(Name).task(id=i, timeout_ms=10, run=fn),
        TaskKind.TASK,
    ),
    "input_schema.parent_task": (
        lambda ex, i, fn: ex.input_schema(Name).parent_task(id=i, timeout_ms=10, run_parent=fn),
        TaskKind.PARENT,
    ),
    "validate_input.task": (
        lambda ex, i, fn: ex.validate_input(_upper_name).task(id=i, timeout_ms=10, run=fn),
        TaskKind.TASK,
    ),
    "validate_input.parent_task": (
        lambda ex, i, fn: ex.validate_input(_upper_name).parent_task(
            id=i, timeout_ms=10, run_parent=fn
        ),
        TaskKind.PARENT,
    ),
    "parent_schema_task": (
        lambda ex, i, fn: ex.parent_schema_task(
            id=i, input_schema=Name, timeout_ms=10, run_parent=fn
        ),
        TaskKind.PARENT,
    ),
}

EXPECTED_VALIDATED: dict[str, Any] = {
    "task": None,
    "parent_task": None,
    "input_schema.task": Name(name="ann"),
    "input_schema.parent_task": Name(name="ann"),
    "validate_input.task": {"name": "ANN"},
    "validate_input.parent_task": {"name": "ANN"},
    "parent_schema_task": Name(name="ann"),
}


async def _check_defined(task: Any, form: str, task_id: str, fn: Any) -> None:
    _, kind = FORMS[form]
    assert isinstance(task, DurableTask)
    assert task.id == task_id
    assert task.kind is kind
    assert task.run_fn is fn
    expected = EXPECTED_VALIDATED[form]
    if expected is None:
        assert task.validator is None
    else:
        assert task.validator is not None
        assert await task.validator({"name": "ann"}) == expected


@pytest.mark.parametrize("form", list(FORMS))
async def test_call_form_returns_the_task(ex: DurableExecutor, form: str) -> None:
    define, _ = FORMS[form]
    task = define(ex, "called", run)
    await _check_defined(task, form, "called", run)
    with pytest.raises(ValueError, match="already defined"):
        define(ex, "called", run)


@pytest.mark.parametrize("form", list(FORMS))
async def test_decorator_form_returns_the_task(ex: DurableExecutor, form: str) -> None:
    define, _ = FORMS[form]
    decorator = define(ex, "decorated", None)
    assert not isinstance(decorator, DurableTask)
    task = decorator(run)
    await _check_defined(task, form, "decorated", run)


def test_decorator_syntax(ex: DurableExecutor) -> None:
    @ex.task(id="hello", timeout_ms=1000)
    def hello(ctx: TaskContext, input: dict[str, str]) -> str:
        return f"Hello, {input['name']}!"

    @ex.parent_task(
        id="hello_parent",
        timeout_ms=1000,
        on_run_and_children_complete={"id": "hello_parent_done", "timeout_ms": 10, "run": run},
    )
    def hello_parent(ctx: TaskContext, input: Any) -> Any:
        return {"output": None, "children": [ChildTask(hello, input)]}

    assert isinstance(hello, DurableTask)
    assert hello.call(make_ctx(), {"name": "world"}) == "Hello, world!"
    assert hello_parent.completion is not None
    assert hello_parent.completion.id == "hello_parent_done"


def test_completion_task_is_not_validated_and_marked(ex: DurableExecutor) -> None:
    parent = ex.input_schema(Name).parent_task(
        id="p",
        timeout_ms=10,
        run_parent=run_parent,
        on_run_and_children_complete={"id": "p_done", "timeout_ms": 7, "run": run},
    )
    assert parent.validator is not None
    assert not parent.is_completion
    assert parent.completion is not None
    assert parent.completion.validator is None
    assert parent.completion.is_completion
    assert parent.completion.timeout_ms == 7


def test_completion_tasks_nest_to_any_depth(ex: DurableExecutor) -> None:
    parent = ex.parent_task(
        id="p",
        timeout_ms=10,
        run_parent=run_parent,
        on_run_and_children_complete={
            "id": "level1",
            "timeout_ms": 10,
            "run_parent": run_parent,
            "on_run_and_children_complete": {
                "id": "level2",
                "timeout_ms": 10,
                "max_retry_attempts": 2,
                "run_parent": run_parent,
                "on_run_and_children_complete": {"id": "level3", "timeout_ms": 10, "run": run},
            },
        },
    )
    chain = []
    task: DurableTask[Any, Any] | None = parent.completion
    while task is not None:
        chain.append((task.id, task.kind, task.is_completion))
        task = task.completion
    assert chain == [
        ("level1", TaskKind.PARENT, True),
        ("level2", TaskKind.PARENT, True),
        ("level3", TaskKind.TASK, True),
    ]


# -- on_run_and_children_complete mapping errors ---------------------------------------------

BAD_SPECS: dict[str, tuple[Any, str]] = {
    "list": ([("id", "f")], "must be a mapping"),
    "string": ("f", "must be a mapping"),
    "unknown key": (
        {"id": "f", "timeout_ms": 10, "run": run, "retries": 3},
        "unknown option\\(s\\) retries",
    ),
    "both run and run_parent": (
        {"id": "f", "timeout_ms": 10, "run": run, "run_parent": run_parent},
        "exactly one of run or run_parent",
    ),
    "neither run nor run_parent": ({"id": "f", "timeout_ms": 10}, "exactly one of run"),
    "nested under run": (
        {
            "id": "f",
            "timeout_ms": 10,
            "run": run,
            "on_run_and_children_complete": {"id": "g", "timeout_ms": 10, "run": run},
        },
        "needs run_parent",
    ),
    "non-str key": (
        {"id": "f", "timeout_ms": 10, "run": run, 5: "five", "x": 1},
        "unknown option\\(s\\) 5, x",
    ),
    "missing id": ({"timeout_ms": 10, "run": run}, "needs id and timeout_ms"),
    "missing timeout": ({"id": "f", "run": run}, "needs id and timeout_ms"),
}


@pytest.mark.parametrize("case", list(BAD_SPECS))
def test_bad_completion_mapping(ex: DurableExecutor, case: str) -> None:
    spec, message = BAD_SPECS[case]
    with pytest.raises(ValueError, match=f"on_run_and_children_complete of task 'p'.*{message}"):
        ex.parent_task(
            id="p", timeout_ms=10, run_parent=run_parent, on_run_and_children_complete=spec
        )
    ex.task(id="p", timeout_ms=10, run=run)  # nothing was registered
    ex.task(id="f", timeout_ms=10, run=run)


def test_bad_nested_completion_mapping_names_its_parent(ex: DurableExecutor) -> None:
    spec = {
        "id": "f",
        "timeout_ms": 10,
        "run_parent": run_parent,
        "on_run_and_children_complete": 5,
    }
    with pytest.raises(ValueError, match="on_run_and_children_complete of task 'f' must be"):
        ex.parent_task(
            id="p", timeout_ms=10, run_parent=run_parent, on_run_and_children_complete=spec
        )


def test_bad_completion_mapping_in_decorator_form(ex: DurableExecutor) -> None:
    decorator = ex.parent_task(
        id="p", timeout_ms=10, on_run_and_children_complete={"id": "f", "timeout_ms": 10}
    )
    with pytest.raises(ValueError, match="exactly one of run or run_parent"):
        decorator(run_parent)


# -- run functions: callability, sync/async and arity ----------------------------------------


def no_args() -> None:
    pass


def only_keywords(**kwargs: Any) -> None:
    pass


def three_required(ctx: Any, input: Any, extra: Any) -> None:
    pass


def keyword_only_input(ctx: Any, *, input: Any) -> None:
    pass


class NoArgsCallable:
    def __call__(self) -> None:
        pass


@pytest.mark.parametrize(
    "fn",
    [
        no_args,
        lambda: None,
        only_keywords,
        three_required,
        keyword_only_input,
        NoArgsCallable(),
        functools.partial(three_required, 1, 2, 3),
    ],
    ids=["function", "lambda", "kwargs", "three required", "keyword-only", "object", "partial"],
)
def test_run_function_that_cannot_take_ctx_and_input_is_rejected(
    ex: DurableExecutor, fn: Any
) -> None:
    with pytest.raises(ValueError, match=r"Task 'r': the run function must be callable as run\("):
        ex.task(id="r", timeout_ms=10, run=fn)
    with pytest.raises(ValueError, match="the run function must be callable"):
        ex.parent_task(id="r", timeout_ms=10, run_parent=fn)


@pytest.mark.parametrize("not_callable", [5, "run", ["run"]])
def test_run_that_is_not_callable_is_rejected(ex: DurableExecutor, not_callable: Any) -> None:
    with pytest.raises(ValueError, match="Task 'r': run must be callable"):
        ex.task(id="r", timeout_ms=10, run=not_callable)
    with pytest.raises(ValueError, match="Task 'r': run_parent must be callable"):
        ex.parent_task(id="r", timeout_ms=10, run_parent=not_callable)


def sync_two(ctx: TaskContext, input: Any) -> Any:
    return (ctx.task_id, input)


def sync_one(ctx: TaskContext) -> Any:
    return (ctx.task_id,)


async def async_two(ctx: TaskContext, input: Any) -> Any:
    return (ctx.task_id, input)


async def async_one(ctx: TaskContext) -> Any:
    return (ctx.task_id,)


def bound_first(bound: Any, ctx: TaskContext, input: Any) -> Any:
    return (bound, ctx.task_id, input)


async def async_bound_first(bound: Any, ctx: TaskContext, input: Any) -> Any:
    return (bound, ctx.task_id, input)


def with_default(ctx: TaskContext, input: Any = "default") -> Any:
    return (ctx.task_id, input)


def star_args(*args: Any) -> Any:
    return (args[0].task_id, *args[1:])


def ctx_and_rest(ctx: TaskContext, *rest: Any) -> Any:
    return (ctx.task_id, *rest)


def extra_optional(ctx: TaskContext, input: Any, extra: Any = "x") -> Any:
    return (ctx.task_id, input, extra)


def optional_keyword(ctx: TaskContext, *, flag: bool = True) -> Any:
    return (ctx.task_id, flag)


class SyncTwo:
    def __call__(self, ctx: TaskContext, input: Any) -> Any:
        return ("obj", ctx.task_id, input)


class SyncOne:
    def __call__(self, ctx: TaskContext) -> Any:
        return ("obj", ctx.task_id)


class AsyncTwo:
    async def __call__(self, ctx: TaskContext, input: Any) -> Any:
        return ("aobj", ctx.task_id, input)


class AsyncOne:
    async def __call__(self, ctx: TaskContext) -> Any:
        return ("aobj", ctx.task_id)


class Methods:
    def one(self, ctx: TaskContext) -> Any:
        return ("method", ctx.task_id)

    async def two(self, ctx: TaskContext, input: Any) -> Any:
        return ("amethod", ctx.task_id, input)

    @staticmethod
    def static_two(ctx: TaskContext, input: Any) -> Any:
        return ("static", ctx.task_id, input)

    @classmethod
    def class_one(cls, ctx: TaskContext) -> Any:
        return (cls.__name__, ctx.task_id)


# (run function, is_async, takes_input, result of call(ctx with task_id "t", "IN"))
ARITY_CASES: dict[str, tuple[Any, bool, bool, Any]] = {
    "sync (ctx, input)": (sync_two, False, True, ("t", "IN")),
    "sync (ctx)": (sync_one, False, False, ("t",)),
    "async (ctx, input)": (async_two, True, True, ("t", "IN")),
    "async (ctx)": (async_one, True, False, ("t",)),
    "lambda (ctx, input)": (lambda ctx, input: (ctx.task_id, input), False, True, ("t", "IN")),
    "lambda (ctx)": (lambda ctx: (ctx.task_id,), False, False, ("t",)),
    "partial binds first": (functools.partial(bound_first, "b"), False, True, ("b", "t", "IN")),
    "partial binds input": (
        functools.partial(sync_two, input="fixed"),
        False,
        False,
        ("t", "fixed"),
    ),
    "partial of async": (
        functools.partial(async_bound_first, "b"),
        True,
        True,
        ("b", "t", "IN"),
    ),
    "partial of partial of async": (
        functools.partial(functools.partial(async_bound_first), "b"),
        True,
        True,
        ("b", "t", "IN"),
    ),
    "partial of async object": (functools.partial(AsyncOne()), True, False, ("aobj", "t")),
    "default input": (with_default, False, True, ("t", "IN")),
    "*args": (star_args, False, True, ("t", "IN")),
    "ctx and *rest": (ctx_and_rest, False, True, ("t", "IN")),
    "extra optional": (extra_optional, False, True, ("t", "IN", "x")),
    "optional keyword": (optional_keyword, False, False, ("t", True)),
    "object (ctx, input)": (SyncTwo(), False, True, ("obj", "t", "IN")),
    "object (ctx)": (SyncOne(), False, False, ("obj", "t")),
    "async object (ctx, input)": (AsyncTwo(), True, True, ("aobj", "t", "IN")),
    "async object (ctx)": (AsyncOne(), True, False, ("aobj", "t")),
    "bound method": (Methods().one, False, False, ("method", "t")),
    "async bound method": (Methods().two, True, True, ("amethod", "t", "IN")),
    "staticmethod": (Methods.static_two, False, True, ("static", "t", "IN")),
    "classmethod": (Methods.class_one, False, False, ("Methods", "t")),
}


@pytest.mark.parametrize("case", list(ARITY_CASES))
async def test_sync_async_and_arity_detection(ex: DurableExecutor, case: str) -> None:
    fn, is_async, takes_input, expected = ARITY_CASES[case]
    task = ex.task(id="t", timeout_ms=10, run=fn)
    assert task.is_async is is_async
    assert task.takes_input is takes_input
    result = task.call(make_ctx("t"), "IN")
    if is_async:
        result = await result
    assert result == expected


# -- sequential_tasks ------------------------------------------------------------------------


def _members(ex: DurableExecutor, *ids: str) -> list[DurableTask[Any, Any]]:
    return [ex.task(id=i, timeout_ms=10, run=run) for i in ids]


def test_sequential_tasks_needs_a_task(ex: DurableExecutor) -> None:
    with pytest.raises(ValueError, match="at least one task"):
        ex.sequential_tasks()


@pytest.mark.parametrize("intruder", ["b", None, run, {"task": "b"}])
def test_sequential_tasks_rejects_non_tasks(ex: DurableExecutor, intruder: Any) -> None:
    (a,) = _members(ex, "a")
    with pytest.raises(ValueError, match="item 1 is not a task"):
        ex.sequential_tasks(a, intruder)


def test_sequential_tasks_rejects_completion_tasks(ex: DurableExecutor) -> None:
    parent = ex.parent_task(
        id="p",
        timeout_ms=10,
        run_parent=run_parent,
        on_run_and_children_complete={"id": "p_done", "timeout_ms": 10, "run": run},
    )
    assert parent.completion is not None
    with pytest.raises(ValueError, match="item 0 is not a task that can be enqueued"):
        ex.sequential_tasks(parent.completion)


def _derived_id(*ids: str) -> str:
    executor = DurableExecutor(InMemoryStorage())
    return executor.sequential_tasks(*_members(executor, *ids)).id


def test_sequential_derived_id_is_deterministic_and_valid() -> None:
    derived = _derived_id("a", "b", "c")
    assert derived == _derived_id("a", "b", "c")
    assert TASK_ID_PATTERN.fullmatch(derived)
    others = {_derived_id("a", "b"), _derived_id("c", "b", "a"), _derived_id("a", "bc")}
    others |= {_derived_id("ab", "c"), _derived_id("a")}
    assert derived not in others
    assert len(others) == 5


def test_sequential_with_explicit_id_is_a_sequence_of_its_steps(ex: DurableExecutor) -> None:
    members = _members(ex, "a", "b", "c")
    seq = ex.sequential_tasks(*members, id="pipeline")
    assert (seq.id, seq.kind, seq.completion) == ("pipeline", TaskKind.SEQUENCE, None)
    assert seq.steps == tuple(members)
    assert members[0].steps is None
    with pytest.raises(ValueError, match="already defined"):
        ex.task(id="pipeline", timeout_ms=10, run=run)
    ex.task(id="pipeline_1", timeout_ms=10, run=run)  # no hidden tasks are defined


def test_same_sequence_twice_is_a_duplicate(ex: DurableExecutor) -> None:
    members = _members(ex, "a", "b")
    ex.sequential_tasks(*members)
    with pytest.raises(ValueError, match="already defined"):
        ex.sequential_tasks(*members)


def test_sequential_with_invalid_id(ex: DurableExecutor) -> None:
    with pytest.raises(ValueError, match="'bad-id'"):
        ex.sequential_tasks(*_members(ex, "a"), id="bad-id")


async def test_a_sequence_starts_with_its_first_step(ex: DurableExecutor) -> None:
    a, b, c = _members(ex, "a", "b", "c")
    seq = ex.sequential_tasks(a, b, c, id="seq")
    first = await seq.call(make_ctx("seq"), "start")
    assert first == {"output": None, "children": [ChildTask(a, "start")]}


async def test_sequence_of_one_task(ex: DurableExecutor) -> None:
    (only,) = _members(ex, "only")
    seq = ex.sequential_tasks(only, id="single")
    assert seq.steps == (only,)
    assert await seq.call(make_ctx(), 42) == {"output": None, "children": [ChildTask(only, 42)]}


async def test_sequential_on_a_builder_validates_the_first_input(ex: DurableExecutor) -> None:
    seq = ex.input_schema(Name).sequential_tasks(*_members(ex, "a"), id="validated")
    assert seq.validator is not None
    assert await seq.validator({"name": "x"}) == Name(name="x")


# -- after shutdown --------------------------------------------------------------------------


async def test_defining_after_shutdown_raises() -> None:
    ex = DurableExecutor(InMemoryStorage())
    (a,) = _members(ex, "a")
    await ex.shutdown()
    definitions: list[Callable[[], Any]] = [
        lambda: ex.task(id="t", timeout_ms=10, run=run),
        lambda: ex.task(id="t", timeout_ms=10)(run),
        lambda: ex.parent_task(id="t", timeout_ms=10, run_parent=run_parent),
        lambda: ex.input_schema(Name).task(id="t", timeout_ms=10, run=run),
        lambda: ex.validate_input(_upper_name).parent_task(id="t", timeout_ms=10)(run_parent),
        lambda: ex.parent_schema_task(
            id="t", input_schema=Name, timeout_ms=10, run_parent=run_parent
        ),
        lambda: ex.sequential_tasks(a),
    ]
    for define in definitions:
        with pytest.raises(ExecutorShutdownError, match="shut down"):
            define()
    assert issubclass(ExecutorShutdownError, RuntimeError)


# -- executor options ------------------------------------------------------------------------

BAD_EXECUTOR_OPTIONS: list[tuple[str, Any]] = [
    ("expire_leeway_ms", -1),
    ("expire_leeway_ms", True),
    ("expire_leeway_ms", 1.0),
    ("background_process_interval_ms", 0),
    ("background_process_interval_ms", "250"),
    ("background_process_interval_ms", False),
    ("max_concurrent_task_executions", 0),
    ("max_concurrent_task_executions", 2.5),
    ("max_concurrent_task_executions", None),
    ("max_task_executions_per_batch", 0),
    ("max_task_executions_per_batch", True),
    ("max_children_per_task_execution", 0),
    ("max_children_per_task_execution", 100_001),
    ("max_children_per_task_execution", "1000"),
    ("max_serialized_input_data_size", 0),
    ("max_serialized_input_data_size", 10 * MIB + 1),
    ("max_serialized_input_data_size", 1.5),
    ("max_serialized_input_data_size", True),
    ("max_serialized_output_data_size", -1),
    ("max_serialized_output_data_size", 10 * MIB + 1),
    ("max_serialized_output_data_size", "1MiB"),
    ("shutdown_timeout_ms", -1),
    ("shutdown_timeout_ms", 0.5),
]


@pytest.mark.parametrize(("option", "value"), BAD_EXECUTOR_OPTIONS)
def test_bad_executor_option_is_named(option: str, value: Any) -> None:
    with pytest.raises(ValueError, match=f"^Invalid option {option}="):
        DurableExecutor(InMemoryStorage(), **{option: value})


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("expire_leeway_ms", 0),
        ("background_process_interval_ms", 1),
        ("max_concurrent_task_executions", 1),
        ("max_task_executions_per_batch", 1),
        ("max_children_per_task_execution", 1),
        ("max_children_per_task_execution", 100_000),
        ("max_serialized_input_data_size", 1),
        ("max_serialized_input_data_size", 10 * MIB),
        ("max_serialized_output_data_size", 10 * MIB),
        ("shutdown_timeout_ms", 0),
    ],
)
def test_executor_option_bounds_are_inclusive(option: str, value: int) -> None:
    options: dict[str, Any] = {option: value}
    executor = DurableExecutor(InMemoryStorage(), **options)
    assert getattr(executor.options, option) == value


def test_executor_option_defaults() -> None:
    options = DurableExecutor(InMemoryStorage()).options
    assert options.max_children_per_task_execution == 1_000
    assert options.max_serialized_input_data_size == MIB
    assert options.max_serialized_output_data_size == MIB
    assert isinstance(options.serializer, JsonSerializer)
    assert isinstance(options.logger, logging.Logger)


def test_unknown_executor_option_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        DurableExecutor(InMemoryStorage(), max_childrens=5)  # type: ignore[call-arg]


class OnlySerialize:
    def serialize(self, value: Any) -> str:
        return ""


class ReverseSerializer:
    def serialize(self, value: Any) -> str:
        return str(value)[::-1]

    def deserialize(self, data: str) -> Any:
        return data[::-1]


@pytest.mark.parametrize(
    "serializer",
    [object(), "json", OnlySerialize(), JsonSerializer, ReverseSerializer],
    ids=["object", "str", "half a serializer", "serializer class", "custom class"],
)
def test_bad_serializer_is_rejected(serializer: Any) -> None:
    with pytest.raises(ValueError, match=r"^Invalid option serializer"):
        DurableExecutor(InMemoryStorage(), serializer=serializer)


def test_logger_adapter_is_accepted() -> None:
    adapter = logging.LoggerAdapter(logging.getLogger("tests.adapter"), {"app": "x"})
    assert DurableExecutor(InMemoryStorage(), logger=adapter).options.logger is adapter


def test_custom_serializer_and_logger_are_kept() -> None:
    serializer = ReverseSerializer()
    logger = logging.getLogger("tests.custom")
    executor = DurableExecutor(InMemoryStorage(), serializer=serializer, logger=logger)
    assert executor.options.serializer is serializer
    assert executor.options.logger is logger


@pytest.mark.parametrize("logger", ["durable", print, logging, 5])
def test_bad_logger_is_rejected(logger: Any) -> None:
    with pytest.raises(ValueError, match=r"^Invalid option logger"):
        DurableExecutor(InMemoryStorage(), logger=logger)


@pytest.mark.parametrize("storage", [object(), "sqlite:///x.db", {}, 5, InMemoryStorage])
def test_storage_that_is_not_a_storage_is_rejected(storage: Any) -> None:
    with pytest.raises(ValueError, match=r"^Invalid storage"):
        DurableExecutor(storage)


# -- the run context -------------------------------------------------------------------------


def test_task_context_reports_cancellation_and_shutdown() -> None:
    shutdown = threading.Event()
    ctx = TaskContext(
        task_id="t",
        execution_id="te_1",
        attempt=2,
        prev_error=None,
        root_execution_id="te_root",
        parent_execution_id="te_parent",
        shutdown_event=shutdown,
    )
    assert (ctx.task_id, ctx.execution_id, ctx.attempt) == ("t", "te_1", 2)
    assert (ctx.root_execution_id, ctx.parent_execution_id) == ("te_root", "te_parent")
    assert not ctx.is_cancelled()
    assert not ctx.is_shutting_down()
    waiting = ctx.cancel_event
    assert not waiting.is_set()
    ctx.request_cancel()
    assert ctx.is_cancelled()
    assert waiting.is_set()
    shutdown.set()
    assert ctx.is_shutting_down()
    assert "te_1" in repr(ctx)


def test_cancel_event_asked_for_after_cancellation_is_set() -> None:
    ctx, other = make_ctx(), make_ctx()
    ctx.request_cancel()
    assert ctx.cancel_event.is_set()
    assert not other.is_cancelled()  # each context has its own cancellation
    assert not other.cancel_event.is_set()
