"""The ``durable-execution`` command without a worker: --version, migrate, enqueue, and the
exit code of every usage error (2), each run as a subprocess."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

import durable_execution
from durable_execution import DurableExecutor, DurableTaskExecutionStatus
from durable_execution.storage.sqlite import SQLiteStorage

from .command import APP, run_command

pytestmark = pytest.mark.slow


async def test_version() -> None:
    result = await run_command("--version")
    assert (result.code, result.stdout.strip()) == (
        0,
        f"durable-execution {durable_execution.__version__}",
    )


async def test_migrate_creates_the_schema_of_the_storage_url(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    result = await run_command("migrate", "--storage", f"sqlite:///{path}")
    assert result.code == 0, result.stderr
    assert "schema up to date" in result.stdout
    with sqlite3.connect(path) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert "de_schema_version" in tables
    again = await run_command("migrate", storage_url=f"sqlite:///{path}")  # from the env
    assert again.code == 0, again.stderr


async def test_enqueue_without_wait_prints_the_id_of_a_stored_execution(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    result = await run_command(
        "enqueue", APP, "add", "--input", '{"a": 1, "b": 2}', "--json", storage_url=url
    )
    assert result.code == 0, result.stderr
    execution_id = json.loads(result.stdout)["execution_id"]
    storage = SQLiteStorage(str(tmp_path / "e.db"))
    try:
        execution = await DurableExecutor(storage).get_execution(execution_id)
    finally:
        await storage.close()
    assert (execution.task_id, execution.input, execution.status) == (
        "add",
        {"a": 1, "b": 2},
        DurableTaskExecutionStatus.READY,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["worker", "tests.apps.nowhere:executor"], "Cannot import the application module"),
        (["worker", "tests.apps.shop"], "expected MODULE:ATTRIBUTE"),
        (["worker", "tests.apps.shop:missing"], "has no attribute 'missing'"),
        (["worker", "tests.apps.shop:not_an_executor"], "str, not a DurableExecutor"),
        (["enqueue", APP, "nope"], "No task 'nope'"),
        (["enqueue", APP, "add", "--input", "{not json"], "not JSON"),
        (["worker", APP, "--processes", "0"], "--processes"),
        (["worker", "tests.apps.nowhere:x", "--processes", "2"], "exited with a usage error"),
        (["worker", APP, "--storage", "mysql://x"], "Unknown storage URL scheme"),
        (["frobnicate"], "No such command"),
    ],
)
async def test_usage_errors_exit_with_2_and_say_why(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = await run_command(*args, storage_url=f"sqlite:///{tmp_path / 'u.db'}")
    assert result.code == 2, (result.stdout, result.stderr)
    assert message in " ".join(result.stderr.split()), result.stderr


async def test_enqueue_wait_timeout_exits_with_4(tmp_path: Path) -> None:
    result = await run_command(
        "enqueue",
        APP,
        "add",
        "--input",
        '{"a": 1, "b": 1}',
        "--wait",
        "--timeout",
        "0.2",
        storage_url=f"sqlite:///{tmp_path / 't.db'}",
    )  # no worker runs it
    assert result.code == 4, result.stderr
    assert "not finished after 0.2s" in result.stderr


def test_the_restart_delay_doubles_up_to_its_cap() -> None:
    from durable_execution.cli.supervisor import MAX_RESTART_DELAY_S, restart_delay_s

    assert [restart_delay_s(n) for n in range(1, 5)] == [0.5, 1.0, 2.0, 4.0]
    assert restart_delay_s(100) == MAX_RESTART_DELAY_S == 30.0
