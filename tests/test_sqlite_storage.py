"""What is specific to SQLite: files that are not ours, schema versions, the event loop."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from durable_execution import DurableExecutor, DurableStorageError, StorageSchemaError
from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.inspection import ExecutionFilter
from durable_execution.storage.records import ExecutionOutcome, NewExecution, WorkKind
from durable_execution.storage.sqlite import SQLiteStorage
from durable_execution.storage.sqlite.schema import MIGRATIONS, UNSUCCESSFUL_CONDITION
from durable_execution.storage.sqlite.watch import CommitWatch


async def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not a database at all" * 100)
    storage = SQLiteStorage(path)
    with pytest.raises(StorageSchemaError, match="not a durable_execution SQLite database"):
        await storage.initialize()
    await storage.close()
    assert path.read_bytes().startswith(b"this is not a database")  # left untouched


async def test_a_foreign_table_of_the_same_name_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "foreign.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE de_executions (id INTEGER PRIMARY KEY, name TEXT)")
    storage = SQLiteStorage(path)
    with pytest.raises(StorageSchemaError, match="did not create"):
        await storage.initialize()
    await storage.close()


async def test_other_tables_in_the_file_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY)")
    storage = SQLiteStorage(path)
    await storage.initialize()
    await storage.close()
    with sqlite3.connect(path) as conn:
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert {"users", "de_executions", "de_schema_version"} <= names


async def test_a_newer_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    storage = SQLiteStorage(path)
    await storage.initialize()
    await storage.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE de_schema_version SET version = 999")
    again = SQLiteStorage(path)
    with pytest.raises(StorageSchemaError, match="newer durable_execution"):
        await again.initialize()
    await again.close()


async def test_executor_start_reports_a_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"\x00garbage" * 1000)
    executor = DurableExecutor(SQLiteStorage(path))
    with pytest.raises(StorageSchemaError):
        await executor.start()
    await executor.shutdown()
    await executor.storage.close()


async def test_schema_is_created_once_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "twice.db"
    first, second = SQLiteStorage(path), SQLiteStorage(path)
    await asyncio.gather(first.initialize(), second.initialize())
    new = NewExecution(execution_id="te_1", task_id="a", input="null", start_at_ms=0)
    assert await first.insert_executions([new], now_ms=1) == ["te_1"]
    assert [r.execution_id for r in await second.get_executions(["te_1"])] == ["te_1"]
    await first.close()
    # A closed storage opens again on its next use.
    assert [r.execution_id for r in await first.get_executions(["te_1"])] == ["te_1"]
    await first.close()
    await second.close()
    with sqlite3.connect(path) as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM de_schema_version")]
        assert versions == [version for version, _ in MIGRATIONS]  # each applied once
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_storages_opening_one_new_database_together_all_succeed(tmp_path: Path) -> None:
    # Switching a new database to WAL at the same moment from two connections makes SQLite
    # refuse one at once (no busy wait); it happened in about one try in four.
    for attempt in range(40):
        path = tmp_path / f"race{attempt}.db"
        storages = [SQLiteStorage(path), SQLiteStorage(path)]
        await asyncio.gather(*(storage.initialize() for storage in storages))
        for storage in storages:
            await storage.close()


async def test_the_event_loop_keeps_running_while_sqlite_waits_for_a_lock(
    tmp_path: Path,
) -> None:
    path = tmp_path / "locked.db"
    storage = SQLiteStorage(path, busy_timeout_ms=2_000)
    await storage.initialize()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticking = asyncio.create_task(ticker())
    new = NewExecution(execution_id="te_1", task_id="a", input="null", start_at_ms=0)
    insert = asyncio.create_task(storage.insert_executions([new], now_ms=1))
    started = time.monotonic()
    while time.monotonic() - started < 0.3:
        await asyncio.sleep(0.01)
    assert not insert.done()  # waiting for the lock, in its own thread
    blocker.execute("COMMIT")
    assert await asyncio.wait_for(insert, 5) == ["te_1"]
    ticking.cancel()
    blocker.close()
    await storage.close()
    assert ticks >= 15  # the loop ran throughout


def test_options_are_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="busy_timeout_ms"):
        SQLiteStorage(tmp_path / "x.db", busy_timeout_ms=-1)
    with pytest.raises(ValueError, match="synchronous"):
        SQLiteStorage(tmp_path / "x.db", synchronous="SOMETIMES")  # type: ignore[arg-type]


async def test_an_sqlite_library_without_returning_is_refused_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 34, 1))
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.34.1")
    storage = SQLiteStorage(tmp_path / "old.db")
    with pytest.raises(DurableStorageError, match=r"SQLite 3\.34\.1 is too old.*3\.35\.0"):
        await storage.initialize()
    await storage.close()


async def test_only_executions_inserted_ready_wake_the_claimers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows inserted claimed by their creator (direct dispatch) are no work for the claimers:
    a wake-up for them would cost a write transaction that claims nothing."""
    # Not the watch of other processes' commits (tests/test_sqlite_watch.py): it wakes every
    # kind, and on a loaded machine it heard the schema's creation here, 50 ms on.
    monkeypatch.setattr(CommitWatch, "start", lambda self: None)
    storage = SQLiteStorage(tmp_path / "wake.db")
    woken: list[WorkKind] = []
    storage.add_wakeup_listener(woken.append)

    def new(execution_id: str, claimed: bool, **fields: Any) -> NewExecution:
        return NewExecution(
            execution_id=execution_id,
            task_id="a",
            input="null",
            start_at_ms=0,
            claimed_by="dx_me" if claimed else None,
            claim_lease_ms=1_000,
            **fields,
        )

    await storage.insert_executions([new("claimed", True)], now_ms=1)
    assert WorkKind.READY not in woken
    await storage.insert_executions([new("ready", False)], now_ms=1)
    assert woken.count(WorkKind.READY) == 1
    (parent,) = await storage.claim_ready_executions(
        executor_id="dx_me", lease_ms_by_task={"a": 1_000}, now_ms=2, limit=10
    )
    children = [new("kid", True, root_execution_id="ready", parent_execution_id="ready")]
    spawn = ExecutionOutcome(
        "ready", parent.lease_token, S.RUNNING, S.WAITING_FOR_CHILDREN, children=children
    )
    assert await storage.record_outcomes([spawn], now_ms=3) == [True]
    assert woken.count(WorkKind.READY) == 1  # the child was inserted claimed
    await storage.close()


@pytest.mark.parametrize("max_suspects", [None, 0, 1])
async def test_a_claim_reads_the_ready_rows_and_the_suspects_from_their_indexes(
    tmp_path: Path, max_suspects: int | None
) -> None:
    """A claim never scans the table: ready rows come from the ready index, suspects (when a
    claim limits them) from theirs, whose predicate is the suspect rule written in SQL."""
    from durable_execution.storage.sql_rules import suspect_sql
    from durable_execution.storage.sqlite.leases import _picked

    path = tmp_path / "plans.db"
    storage = SQLiteStorage(path)
    await storage.initialize()
    await storage.close()
    picked, params = _picked(["a", "b"], 100, max_suspects)
    with sqlite3.connect(path) as conn:
        (index_sql,) = conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'de_suspect_idx'"
        ).fetchone()
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {picked}", [0, 0, *params])]
    conn.close()
    assert index_sql.endswith(f"WHERE status = 'ready' AND {suspect_sql()}")
    scans = [step for step in plan if step.startswith(("SCAN de_executions", "SEARCH de_exec"))]
    expected = ["SCAN de_executions USING INDEX de_ready_idx"]
    if max_suspects == 1:
        expected.append("SCAN de_executions USING INDEX de_suspect_idx")
    assert scans == expected, plan


_LISTINGS: dict[str, tuple[ExecutionFilter, str]] = {
    # (filter, what the first page reads); "SCAN e" of a table WITHOUT ROWID walks its
    # primary key, in the listing's order (no sort).
    "newest": (ExecutionFilter(), "SCAN e"),
    "failed": (ExecutionFilter(statuses=(S.FAILED,)), "SCAN e USING INDEX de_unsuccessful_idx"),
    "unsuccessful": (
        ExecutionFilter(statuses=(S.FAILED, S.TIMED_OUT, S.CANCELLED)),
        "SCAN e USING INDEX de_unsuccessful_idx",
    ),
    "ready": (ExecutionFilter(statuses=(S.READY,)), "SCAN e"),
    "task": (ExecutionFilter(task_ids=("charge",)), "SCAN e"),
    "roots": (ExecutionFilter(root_only=True), "SCAN e"),
    "parent": (
        ExecutionFilter(parent_execution_id="p"),
        "SEARCH e USING INDEX de_children_idx (parent_execution_id=?)",
    ),
    "created": (
        ExecutionFilter(created_after_ms=5, created_before_ms=50, id_from="te_0", id_before="te_1"),
        "SEARCH e USING PRIMARY KEY (execution_id>? AND execution_id<?)",
    ),
    "finished": (
        ExecutionFilter(finished_after_ms=5, finished_before_ms=50, id_before="te_1"),
        "SEARCH e USING PRIMARY KEY (execution_id<?)",
    ),
    "attributes": (ExecutionFilter(attributes={"tenant": "acme"}), "SCAN e"),
    "status_task_roots": (
        ExecutionFilter(statuses=(S.FAILED,), task_ids=("charge",), root_only=True),
        "SCAN e USING INDEX de_unsuccessful_idx",
    ),
}


@pytest.mark.parametrize("after", [None, "te_01"], ids=["first_page", "next_page"])
@pytest.mark.parametrize("name", list(_LISTINGS))
async def test_listings_walk_the_primary_key_or_an_index_in_their_order(
    tmp_path: Path, name: str, after: str | None
) -> None:
    """A listing never sorts the table: it walks the primary key (ids begin with their
    creation time) or, for unsuccessful statuses, an index in the same order; a later page
    starts from the cursor's id within it. The parent filter's rows are sorted (one parent's
    children)."""
    from durable_execution.storage.sqlite.inspection import list_sql

    path = tmp_path / "plans.db"
    storage = SQLiteStorage(path)
    await storage.initialize()
    await storage.close()
    where, first = _LISTINGS[name]
    query, params = list_sql(where, limit=50, after=after)
    with sqlite3.connect(path) as conn:
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {query}", params)]
    conn.close()
    reads = [step for step in plan if step.startswith(("SCAN e", "SEARCH e"))]
    assert len(reads) == 1, plan
    if after is None or name == "parent":
        assert reads[0] == first, plan
    else:
        assert reads[0].startswith(first.replace("SCAN", "SEARCH").split(" (")[0]), plan
        assert "execution_id<?" in reads[0], plan
    assert any("TEMP B-TREE" in step for step in plan) == (name == "parent"), plan


async def test_a_status_change_writes_the_unsuccessful_index_only_when_it_holds_the_row(
    tmp_path: Path,
) -> None:
    """The listings' only index has a condition on the status: an UPDATE of the status opens
    it (as it opens the claims' indexes), and a row enters it only by becoming unsuccessful,
    as what it holds after a run of each kind shows."""
    path = tmp_path / "upd.db"
    storage = SQLiteStorage(path)
    await storage.initialize()
    await storage.close()
    with sqlite3.connect(path) as conn:
        names = dict(conn.execute("SELECT rootpage, name FROM sqlite_master WHERE type = 'index'"))
        update = "UPDATE de_executions SET status = ? WHERE execution_id = ?"
        written = {
            names.get(row[3])
            for row in conn.execute(f"EXPLAIN {update}", ("completed", "a"))
            if row[1] == "OpenWrite"
        }
        assert {"de_ready_idx", "de_unsuccessful_idx"} <= written
        columns = "execution_id, task_id, input, status, created_at, updated_at, start_at"
        for eid in ("ok", "ko"):
            conn.execute(
                f"INSERT INTO de_executions ({columns}) VALUES (?, 't', '{{}}', 'ready', 1, 1, 1)",
                (eid,),
            )
        conn.execute(update, ("running", "ok"))
        conn.execute(update, ("completed", "ok"))
        conn.execute(update, ("failed", "ko"))
        held = [
            row[0]
            for row in conn.execute(
                "SELECT execution_id FROM de_executions INDEXED BY de_unsuccessful_idx "
                f"WHERE {UNSUCCESSFUL_CONDITION}"
            )
        ]
    conn.close()
    assert held == ["ko"]
