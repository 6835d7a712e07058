"""The reading commands as a user runs them: ``ls``, ``show`` and ``stats`` as subprocesses
on a real SQLite file and a real PostgreSQL schema, their ``--json`` output parsed, their
exit codes checked. The executions are made beforehand by an executor in this process."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from durable_execution import ChildTask, DurableExecutor, TaskContext
from durable_execution.storage.protocol import DurableStorage
from durable_execution.storage.sqlite import SQLiteStorage

from .command import ROOT, command_env, run_command
from .pg import POSTGRES_DSN, SCHEMAS, storage_in

pytestmark = pytest.mark.slow


@dataclass
class Stored:
    """A storage holding two trees (``order``: a parent whose children ``leaf`` complete and
    ``bad`` fails) and a lone root ``leaf``, with the URL the commands are given."""

    url: str
    storage: DurableStorage
    roots: list[str]  # oldest first
    every: list[str]  # every execution id


def _boom(ctx: TaskContext, i: int) -> None:
    raise ValueError(f"no {i}")


async def _run_trees(storage: DurableStorage) -> tuple[list[str], list[str]]:
    executor = DurableExecutor(storage, background_process_interval_ms=20)
    leaf = executor.task(id="leaf", timeout_ms=5_000, run=lambda ctx, i: i * 2)
    bad = executor.task(id="bad", timeout_ms=5_000, run=_boom)
    order = executor.parent_task(
        id="order",
        timeout_ms=5_000,
        run_parent=lambda ctx, i: {
            "output": None,
            "children": [ChildTask(leaf, i), ChildTask(bad, i)],
        },
    )
    await executor.start()
    try:
        handles = []
        # One after another: ids order executions by their creation to the millisecond only
        # (two made in the same millisecond sort at random), and the test compares orders.
        for task, value in ((order, 1), (leaf, 5), (order, 2)):
            handles.append(await executor.enqueue_task(task, value))
            await handles[-1].wait_and_get_execution(timeout=20)
    finally:
        await executor.shutdown()
    every = [e.execution_id for e in (await executor.list_executions(limit=100)).items]
    return [h.execution_id for h in handles], every


@pytest.fixture(params=["sqlite", "postgres"])
async def stored(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stored]:
    if request.param == "sqlite":
        path = tmp_path / "reading.db"
        storage: DurableStorage = SQLiteStorage(path)
        url = f"sqlite:///{path}"
        schema = None
    else:
        schema = await asyncio.to_thread(SCHEMAS.take)
        storage = storage_in(schema, clock="database")
        url = f"{POSTGRES_DSN}?schema={schema}"
    try:
        await storage.initialize()
        roots, every = await _run_trees(storage)
        yield Stored(url, storage, roots, every)
    finally:
        await storage.close()
        if schema is not None:
            SCHEMAS.give_back(schema)


async def _json(*args: str, url: str) -> Any:
    result = await run_command(*args, "--json", storage_url=url)
    assert result.code == 0, result.stderr
    return json.loads(result.stdout)


async def test_ls_lists_newest_first_with_filters_and_pages(stored: Stored) -> None:
    everything = await _json("ls", url=stored.url)
    ids = [item["execution_id"] for item in everything["items"]]
    assert ids == sorted(stored.every, reverse=True)
    assert len(ids) == 7
    assert everything["next_cursor"] is None

    failed = await _json("ls", "--status", "failed", url=stored.url)
    assert [item["task_id"] for item in failed["items"]] == ["bad", "bad"]
    assert failed["items"][0]["error"]["message"] == "no 2"
    assert "traceback" not in failed["items"][0]["error"]
    lone = await _json("ls", "--task", "leaf", "--roots", url=stored.url)
    assert [item["execution_id"] for item in lone["items"]] == [stored.roots[1]]
    assert (lone["items"][0]["input"], lone["items"][0]["output"]) == (5, 10)
    children = await _json("ls", "--parent", stored.roots[0], url=stored.url)
    assert sorted(item["task_id"] for item in children["items"]) == ["bad", "leaf"]

    # Pages of 3 (--since: the later pages keep the first page's moment).
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(5):
        args = ["ls", "--limit", "3", "--since", "1h"] + (["--cursor", cursor] if cursor else [])
        page = await _json(*args, url=stored.url)
        seen += [item["execution_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids

    table = await run_command("ls", "--limit", "2", storage_url=stored.url)
    assert table.code == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["EXECUTION", "TASK", "STATUS"]
    assert [line.split()[0] for line in lines[1:]] == ids[:2]
    assert "--cursor" in table.stderr


async def test_show_prints_the_whole_tree_with_errors(stored: Stored) -> None:
    root = stored.roots[-1]
    tree = await _json("show", root, url=stored.url)
    assert (tree["task_id"], tree["status"]) == ("order", "children_failed")
    assert [(c["task_id"], c["status"]) for c in tree["children"]] == [
        ("leaf", "completed"),
        ("bad", "failed"),
    ]
    assert tree["children"][0]["output"] == 4
    assert all(c["children"] == [] for c in tree["children"])
    assert tree["children"][1]["duration_s"] >= 0
    assert "traceback" not in tree["children"][1]["error"]
    with_traceback = await _json("show", root, "--traceback", url=stored.url)
    assert "ValueError: no 2" in with_traceback["children"][1]["error"]["traceback"]

    human = await run_command("show", root, "--traceback", storage_url=stored.url)
    assert human.code == 0, human.stderr
    lines = human.stdout.splitlines()
    assert lines[0].startswith("order children_failed ")
    assert lines[0].endswith(root)
    assert any("leaf completed" in line for line in lines)
    assert any("bad failed" in line for line in lines)
    assert any("builtins.ValueError: no 2" in line for line in lines)
    assert "_boom" in human.stdout  # the failing function, from the traceback

    missing = await run_command("show", "te_nothing", storage_url=stored.url)
    assert missing.code == 5
    assert "No execution te_nothing" in missing.stderr


async def test_stats_counts_by_task_and_status(stored: Stored) -> None:
    stats = await _json("stats", url=stored.url)
    counts = {(c["task_id"], c["status"]): c["count"] for c in stats["counts"]}
    assert counts == {
        ("bad", "failed"): 2,
        ("leaf", "completed"): 3,
        ("order", "children_failed"): 2,
    }
    assert stats["by_status"] == {"failed": 2, "completed": 3, "children_failed": 2}
    assert (stats["total"], stats["backlog"], stats["finished_per_s"]) == (7, 0, None)
    table = await run_command("stats", storage_url=stored.url)
    assert table.code == 0, table.stderr
    rows = {line.split()[0]: line.split()[1:] for line in table.stdout.splitlines()}
    assert rows["all"] == ["2", "2", "3", "7"]  # failed, children_failed, completed, total
    assert "backlog (ready): 0" in table.stdout


# Ctrl-C as a terminal sends it: the command starts with SIGINT's default handling, whatever
# this process inherited (a run started in the background by a non-interactive shell ignores
# SIGINT, and its children would too, as programs started with `&` are meant to).
_AS_AT_A_TERMINAL = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'durable-execution'; runpy.run_module('durable_execution', run_name='__main__')"
)


async def test_stats_watch_follows_new_executions_until_interrupted(stored: Stored) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _AS_AT_A_TERMINAL,
        "stats",
        "--watch",
        "--json",
        "--interval",
        "0.2",
        cwd=ROOT,
        env=command_env(stored.url),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        first = json.loads(await asyncio.wait_for(process.stdout.readline(), 30))
        assert (first["total"], first["backlog"]) == (7, 0)
        executor = DurableExecutor(stored.storage)  # enqueues only: they stay ready
        waiting = executor.task(id="later", timeout_ms=1_000, run=lambda ctx: None)
        await executor.enqueue_task(waiting)
        await executor.enqueue_task(waiting)
        deadline = time.monotonic() + 20
        while True:
            assert time.monotonic() < deadline, "the new executions never showed"
            line = json.loads(await asyncio.wait_for(process.stdout.readline(), 20))
            if line["total"] == 9:
                break
        assert line["backlog"] == 2
        assert line["finished_per_s"] == 0
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 20) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ls", "--status", "bogus"], "Invalid status 'bogus'"),
        (["ls", "--since", "soon"], "Invalid duration"),
        (["ls", "--cursor", "~garbage"], "Invalid cursor"),
        (["ls", "--roots", "--parent", "te_x"], "exclude each other"),
    ],
)
async def test_reading_usage_errors_exit_with_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    path = tmp_path / "u.db"
    storage = SQLiteStorage(path)
    await storage.initialize()
    await storage.close()
    result = await run_command(*args, "--storage", f"sqlite:///{path}")
    assert result.code == 2, (result.stdout, result.stderr)
    assert message in result.stderr


async def test_a_missing_sqlite_file_is_refused_not_created(tmp_path: Path) -> None:
    path = tmp_path / "typo.db"
    result = await run_command("ls", "--storage", f"sqlite:///{path}")
    assert result.code == 2, (result.stdout, result.stderr)
    assert "No SQLite file" in result.stderr
    assert not path.exists()


async def test_an_unreachable_storage_exits_with_3() -> None:
    result = await run_command(
        "ls", "--storage", "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1"
    )
    assert result.code == 3, (result.stdout, result.stderr)
    assert "error:" in result.stderr
