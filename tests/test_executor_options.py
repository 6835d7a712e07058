"""ExecutorOptions is the one list of the executor's options: the constructor's keywords and
the README's list are kept equal to it."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import re
from pathlib import Path

import pytest

from durable_execution import DurableExecutor, ExecutorOptions, TaskContext
from durable_execution.storage.sqlite import SQLiteStorage

README = Path(__file__).resolve().parents[1] / "README.md"
DEFAULTED_BY_NONE = {"serializer", "logger"}  # None in the signature: the option's default


def test_the_constructor_takes_exactly_the_options_with_their_defaults() -> None:
    parameters = inspect.signature(DurableExecutor.__init__).parameters
    keywords = {name: p.default for name, p in parameters.items() if p.kind is p.KEYWORD_ONLY}
    options = dataclasses.fields(ExecutorOptions)
    assert list(keywords) == [option.name for option in options]
    for option in options:
        if option.name in DEFAULTED_BY_NONE:
            assert keywords[option.name] is None
        else:
            assert keywords[option.name] == option.default, option.name


def test_the_readme_lists_every_option() -> None:
    readme = README.read_text()
    section = readme[readme.index("## Executor options") :]
    section = section[: section.index("\n## ")]
    listed = set(re.findall(r"`([a-z_]+)`", section))
    assert {option.name for option in dataclasses.fields(ExecutorOptions)} <= listed


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("expire_leeway_ms", -1, "an integer between 0 and 316224000000"),
        ("expire_leeway_ms", 10**20, "an integer between 0 and 316224000000"),
        ("lease_ms", 99, "an integer between 100 and 86400000"),
        ("lease_ms", 86_400_001, "an integer between 100 and 86400000"),
        ("max_lease_expiries", 0, "an integer between 1 and 1000000"),
        ("background_process_interval_ms", 0, "an integer between 1 and 3600000"),
        ("max_concurrent_task_executions", 100_001, "an integer between 1 and 100000"),
        ("max_task_executions_per_batch", 10_001, "an integer between 1 and 10000"),
        ("max_children_per_task_execution", 100_001, "an integer between 1 and 100000"),
        (
            "max_serialized_input_data_size",
            10 * 1024 * 1024 + 1,
            "an integer between 1 and 10485760",
        ),
        ("shutdown_timeout_ms", True, "an integer between 0 and 316224000000"),
    ],
)
def test_integer_options_are_checked_from_their_bounds(
    option: str, value: object, expected: str
) -> None:
    with pytest.raises(
        ValueError, match=f"^Invalid option {option}={value!r}: expected {expected}"
    ):
        DurableExecutor(**{option: value})  # type: ignore[arg-type]


def test_every_integer_option_has_an_upper_bound() -> None:
    for option in dataclasses.fields(ExecutorOptions):
        if "minimum" in option.metadata:
            assert isinstance(option.metadata["maximum"], int), option.name
            above = option.metadata["maximum"] + 1
            with pytest.raises(ValueError, match=f"^Invalid option {option.name}={above}"):
                ExecutorOptions(**{option.name: above})


async def test_set_options_changes_options_while_not_started_and_checks_them(
    tmp_path: Path,
) -> None:
    executor = DurableExecutor(SQLiteStorage(str(tmp_path / "o.db")), lease_ms=5_000)
    executor.set_options(max_concurrent_task_executions=3, shutdown_timeout_ms=0)
    assert (executor.options.max_concurrent_task_executions, executor.options.lease_ms) == (
        3,
        5_000,
    )
    with pytest.raises(ValueError, match="max_task_executions_per_batch"):
        executor.set_options(max_task_executions_per_batch=0)
    with pytest.raises(ValueError, match="Unknown executor option"):
        executor.set_options(middleware=())
    assert executor.options.max_task_executions_per_batch == 100  # unchanged
    running: list[int] = []
    most = 0

    @executor.task(id="t", timeout_ms=5_000)
    async def task(ctx: TaskContext, i: int) -> int:
        nonlocal most
        running.append(i)
        most = max(most, len(running))
        await asyncio.sleep(0.02)
        running.remove(i)
        return i

    assert executor.registered_tasks == {"t": task}
    async with executor:
        with pytest.raises(RuntimeError, match="running executor"):
            executor.set_options(lease_ms=6_000)
        handles = await executor.enqueue_tasks([(task, i) for i in range(8)])
        outputs = [(await h.wait_and_get_execution(timeout=10)).output for h in handles]
    assert (outputs, most) == (list(range(8)), 3)  # the engine took the new limit
    executor.set_options(lease_ms=6_000)  # after shutdown
    await executor.storage.close()
