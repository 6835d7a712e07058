"""The pytest plugin, run for real: generated test files in a fresh pytest process.

Each run is a subprocess, as a user's ``pytest`` would be: the plugin comes from the ``pytest11``
entry point of the installed package. Where the installed metadata predates the entry point
(``pip install -e .`` not re-run since; ``make`` re-runs it when pyproject.toml changes), the
plugin is named with ``-p`` instead, and the test of the installed entry point says so.
"""

from __future__ import annotations

import json
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = "durable_execution.testing.pytest_plugin"

pytest_plugins = ["pytester"]


def _installed_entry_point() -> metadata.EntryPoint | None:
    for entry_point in metadata.entry_points(group="pytest11"):
        if entry_point.value == PLUGIN:
            return entry_point
    return None


def plugin_args() -> list[str]:
    return [] if _installed_entry_point() is not None else ["-p", PLUGIN]


def test_the_plugin_is_declared_as_a_pytest11_entry_point() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["pytest11"] == {"durable_execution": PLUGIN}


def test_the_installed_package_registers_the_plugin() -> None:
    name = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"]
    try:
        distribution = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        pytest.skip(f"{name} is not installed (the tests import it from a path)")
    url = json.loads(distribution.read_text("direct_url.json") or "{}").get("url", "")
    if url.removeprefix("file://") != str(ROOT):
        pytest.skip(f"{name} is installed from {url or 'elsewhere'}, not {ROOT}")
    entry_point = _installed_entry_point()
    assert entry_point is not None, "re-run `pip install -e .` (make does it) to register it"
    assert entry_point.name == "durable_execution"


APP = '''
"""An application: its executor and tasks are defined at import time."""
import threading

from durable_execution import DurableExecutor, TaskContext

executor = DurableExecutor()  # $DURABLE_EXECUTION_STORAGE_URL, or ./durable_execution.db


@executor.task(id="greet", timeout_ms=5_000)
async def greet(ctx: TaskContext, name: str) -> str:
    return f"hello {name}"


def shout(ctx: TaskContext, text: str) -> dict:
    return {"text": text.upper(), "thread": threading.current_thread().name}


shout_task = executor.task(id="shout", timeout_ms=5_000, run=shout)

welcome = executor.parent_task(
    id="welcome",
    timeout_ms=5_000,
    run_parent=lambda ctx, names: {
        "output": None,
        "children": [{"task": greet, "input": name} for name in names],
    },
    on_run_and_children_complete={
        "id": "welcome_done",
        "timeout_ms": 5_000,
        "run": lambda ctx, value: [c.output for c in value.children_outputs],
    },
)
'''

TESTS = """
import pytest
import pytest_asyncio

import app
from durable_execution import DurableTaskExecutionStatus
from durable_execution.storage.memory import InMemoryStorage
from durable_execution.testing import in_memory, run_task

COMPLETED = DurableTaskExecutionStatus.COMPLETED
seen_storages = []


@pytest_asyncio.fixture  # plain @pytest.fixture is enough in auto mode
async def app_executor():
    async with in_memory(app.executor) as executor:
        seen_storages.append(executor.storage)
        yield executor


{mark}
async def test_greet(app_executor):
    execution = await run_task(app_executor, app.greet, "ada")
    assert (execution.status, execution.output) == (COMPLETED, "hello ada")


{mark}
async def test_shout_runs_in_a_worker_thread_on_the_restarted_executor(app_executor):
    execution = await run_task(app_executor, app.shout_task, "hi")
    assert execution.output["text"] == "HI"
    assert execution.output["thread"].startswith("durable-task")


{mark}
async def test_a_tree(app_executor):
    execution = await run_task(app_executor, app.welcome, ["ada", "bob"])
    assert execution.output == ["hello ada", "hello bob"]


{mark}
async def test_each_app_test_had_its_own_empty_storage(app_executor):
    assert len(seen_storages) == 4 and len(set(map(id, seen_storages))) == 4
    assert all(isinstance(s, InMemoryStorage) for s in seen_storages)


{mark}
async def test_the_fixture(durable_executor):
    double = durable_executor.task(id="double", timeout_ms=1_000, run=lambda ctx, i: i * 2)
    execution = await run_task(durable_executor, double, 21)
    assert (execution.status, execution.output) == (COMPLETED, 42)


{mark}
async def test_the_fixture_is_fresh_for_each_test(durable_executor):
    double = durable_executor.task(id="double", timeout_ms=1_000, run=lambda ctx, i: i * 3)
    assert (await run_task(durable_executor, double, 2)).output == 6


{mark}
async def test_a_wrong_expectation_fails(durable_executor):
    double = durable_executor.task(id="double", timeout_ms=1_000, run=lambda ctx, i: i * 2)
    assert (await run_task(durable_executor, double, 1)).output == 3


@pytest.fixture
def durable_executor_options():
    return {{"max_concurrent_task_executions": 1}}


{mark}
async def test_the_options_can_be_overridden(durable_executor):
    assert durable_executor.options.max_concurrent_task_executions == 1
"""


def run_generated(pytester: pytest.Pytester, mode: str, mark: str) -> pytest.RunResult:
    pytester.makeini(
        f"[pytest]\nasyncio_mode = {mode}\nasyncio_default_fixture_loop_scope = function\n"
        "filterwarnings = error\n"
    )
    pytester.makepyfile(app=APP, test_app=TESTS.format(mark=mark))
    return pytester.runpytest_subprocess(*plugin_args(), "-p", "no:cacheprovider")


@pytest.mark.parametrize(
    ("mode", "mark"), [("auto", ""), ("strict", "@pytest.mark.asyncio")], ids=["auto", "strict"]
)
def test_generated_tests_use_the_fixture_and_the_helpers(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, mode: str, mark: str
) -> None:
    monkeypatch.delenv("DURABLE_EXECUTION_STORAGE_URL", raising=False)
    result = run_generated(pytester, mode, mark)
    result.assert_outcomes(passed=7, failed=1)
    result.stdout.fnmatch_lines(["*test_a_wrong_expectation_fails*", "*assert 2 == 3*"])
    # The application's executor ran on memory only: its default SQLite file never appeared.
    assert not (pytester.path / "durable_execution.db").exists()
