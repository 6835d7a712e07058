"""Opening a database written by an earlier release: it is migrated on first use, every
execution in it reads back, and the unfinished ones run to their end with this code.

The databases are ``tests/fixtures/release_<version>.*``, made by that release's code with
``tests/fixtures/make_release_fixtures.py`` (see there for what they hold).
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from durable_execution import DurableExecutor, DurableTaskExecutionStatus, TaskContext
from durable_execution.storage.protocol import DurableStorage
from durable_execution.storage.sqlite import SQLiteStorage
from durable_execution.storage.sqlite.schema import SCHEMA_VERSION as SQLITE_VERSION

from .backends import BACKENDS
from .helpers import wait_until

S = DurableTaskExecutionStatus
FIXTURES = Path(__file__).resolve().parent / "fixtures"
RELEASES = ["0_1_0"]

# Roots by (task id, input): their status and output once everything has run.
EXPECTED_ROOTS: dict[tuple[str, Any], tuple[S, Any]] = {
    ("add_one", 1): (S.COMPLETED, 2),
    ("refuse", "no"): (S.FAILED, None),
    ("fan_out", 3): (S.COMPLETED, {"input": 3, "output": "fan 3", "sum": 30}),
    ("plain_parent", 4): (S.COMPLETED, None),  # checked below
    ("three_more", 10): (S.COMPLETED, 13),
    ("add_one", 2): (S.CANCELLED, None),
    # unfinished in the fixture, finished by this code:
    ("fan_out", 2): (S.COMPLETED, {"input": 2, "output": "fan 2", "sum": 10}),
    ("plain_parent", 5): (S.COMPLETED, None),
    ("lonely_parent", "alone"): (S.COMPLETED, "done: alone"),
    ("add_one", 41): (S.COMPLETED, 42),
    ("add_one", 99): (S.COMPLETED, 100),
    ("add_one", 7): (S.COMPLETED, 8),
}


def define(executor: DurableExecutor) -> dict[str, Any]:
    """The fixture's tasks, as an application on this release defines them."""
    tasks: dict[str, Any] = {}
    tasks["add_one"] = executor.task(id="add_one", timeout_ms=5000, run=lambda ctx, i: i + 1)

    def refuse(ctx: TaskContext, i: Any) -> None:
        raise AssertionError("finished in the fixture: never runs again")

    executor.task(id="refuse", timeout_ms=5000, run=refuse)
    child = executor.task(id="child", timeout_ms=5000, run=lambda ctx, i: i * 10)
    executor.parent_task(
        id="fan_out",
        timeout_ms=5000,
        run_parent=lambda ctx, i: {
            "output": f"fan {i}",
            "children": [{"task": child, "input": n} for n in range(i)],
        },
        on_run_and_children_complete={
            "id": "fan_out_done",
            "timeout_ms": 5000,
            "run": lambda ctx, value: {
                "input": value.input,
                "output": value.output,
                "sum": sum(c.output for c in value.children_outputs),
            },
        },
    )
    executor.parent_task(
        id="plain_parent",
        timeout_ms=5000,
        run_parent=lambda ctx, i: {"output": i, "children": [{"task": child, "input": i}]},
    )
    executor.sequential_tasks(tasks["add_one"], tasks["add_one"], tasks["add_one"], id="three_more")
    executor.parent_task(
        id="lonely_parent",
        timeout_ms=5000,
        run_parent=lambda ctx, i: {"output": i},
        on_run_and_children_complete={
            "id": "lonely_done",
            "timeout_ms": 5000,
            "run": lambda ctx, value: f"done: {value.input}",
        },
    )
    return tasks


async def check_release(storage: DurableStorage, all_ids: list[str]) -> None:
    executor = DurableExecutor(storage, background_process_interval_ms=20)
    tasks = define(executor)
    # Every execution reads back before anything runs.
    before = {i: await executor.get_execution(i) for i in all_ids}
    assert all(e.attributes == {} for e in before.values())  # a column added by version 2
    roots = {(e.task_id, e.input): e for e in before.values() if e.root_execution_id is None}
    assert set(roots) == set(EXPECTED_ROOTS)
    unfinished = [e for e in roots.values() if not e.is_finished]
    assert len(unfinished) == 6
    # Version 3: a run left by the release has no backstop, and no lease expired yet; its
    # lease (that release's: timeout plus leeway) expires as it was, and it runs again.
    (left_running,) = await storage.get_executions(
        [e.execution_id for e in before.values() if e.status is S.RUNNING]
    )
    assert (left_running.timeout_at_ms, left_running.lease_expiries) == (None, 0)
    assert left_running.expires_at_ms is not None
    # Version 5: every execution of the release, its waiting parents included, is fail_fast.
    records = await storage.get_executions(all_ids)
    assert {r.children_policy for r in records} == {"fail_fast"}
    assert any(r.status is S.WAITING_FOR_CHILDREN for r in records)
    async with executor:

        async def all_finished() -> bool:
            now = [await executor.get_execution(e.execution_id) for e in roots.values()]
            return all(e.is_closed for e in now)

        await wait_until(all_finished, message="every root to finish and close")
        for key, (status, output) in EXPECTED_ROOTS.items():
            execution = await executor.get_execution(roots[key].execution_id)
            assert execution.status is status, (key, execution.error)
            if output is not None:
                assert execution.output == output, key
        rerun = await executor.get_execution(left_running.execution_id)
        assert (rerun.status, rerun.lease_expiries) == (S.COMPLETED, 1)
        plain = await executor.get_execution(roots[("plain_parent", 5)].execution_id)
        assert plain.output is not None
        assert plain.output["output"] == 5
        assert [c["output"] for c in plain.output["children_outputs"]] == [50]
        # An idempotency key stored by the old release still finds its execution.
        again = await executor.enqueue_task(tasks["add_one"], 41, idempotency_key="unfinished-41")
        assert again.execution_id == roots[("add_one", 41)].execution_id
        # New executions on the migrated database carry attributes.
        tagged = await executor.enqueue_task(tasks["add_one"], 0, attributes={"new": True})
        assert (await tagged.wait_and_get_execution(timeout=10)).attributes == {"new": True}
    for execution_id in all_ids:  # and every execution still reads back
        assert (await executor.get_execution(execution_id)).execution_id == execution_id


@pytest.mark.parametrize("release", RELEASES)
async def test_sqlite_database_of_an_earlier_release(tmp_path: Path, release: str) -> None:
    path = tmp_path / "old.db"
    shutil.copyfile(FIXTURES / f"release_{release}.db", path)
    with sqlite3.connect(path) as conn:
        ids = [row[0] for row in conn.execute("SELECT execution_id FROM de_executions")]
    conn.close()
    storage = SQLiteStorage(path)
    try:
        await check_release(storage, ids)
    finally:
        await storage.close()
    with sqlite3.connect(path) as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM de_schema_version")]
    conn.close()
    assert versions == [1, *range(2, SQLITE_VERSION + 1)]  # 1 written by the release


@pytest.mark.skipif("postgres" not in BACKENDS, reason="PostgreSQL tests are turned off")
@pytest.mark.parametrize("release", RELEASES)
async def test_postgres_database_of_an_earlier_release(release: str) -> None:
    from durable_execution.storage.postgres.schema import MIGRATIONS as POSTGRES_MIGRATIONS

    from .pg import admin_connection, fresh_schema, storage_in

    dump = (FIXTURES / f"release_{release}.sql").read_text()
    async with fresh_schema("up") as schema:
        # psql's meta-commands (\restrict) are not SQL; the schema gets this test's name.
        script = "\n".join(line for line in dump.splitlines() if not line.startswith("\\"))
        script = script.replace("de_release_fixture", schema)
        async with await admin_connection() as conn:
            await conn.execute(script.encode(), prepare=False)
            cursor = await conn.execute(f'SELECT execution_id FROM "{schema}".de_executions')
            ids = [row[0] for row in await cursor.fetchall()]
        storage = storage_in(schema)
        try:
            await check_release(storage, ids)
        finally:
            await storage.close()
        async with await admin_connection() as conn:
            cursor = await conn.execute(
                f'SELECT version FROM "{schema}".de_schema_version ORDER BY version'
            )
            assert [row[0] for row in await cursor.fetchall()] == [
                version for version, _ in POSTGRES_MIGRATIONS
            ]
