"""The chaos suite (chaos/, ``make chaos``): its tally on made-up evidence, its audit triggers on
real storages, and the short version of every scenario with real worker processes.

The scenarios here are the ``--quick`` settings (about 20 s in all); ``make chaos`` runs the
full ones (a few minutes) and prints the figures of docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from chaos.audit import AuditRow
from chaos.harness import Store, collect, postgres_store, sqlite_store
from chaos.report import Report, format_table
from chaos.runlog import RunEntry, RunLog
from chaos.suite import run_scenario
from chaos.tally import Execution, takeover_delays, tally
from chaos.workload import define_tasks, expected_output, output_is_right

from durable_execution import DurableExecutor
from durable_execution.storage import storage_from_url

from .backends import BACKENDS

STORE_BACKENDS = [name for name in ("sqlite", "postgres") if name in BACKENDS]


def _dsn() -> str:
    from .pg import POSTGRES_DSN

    return POSTGRES_DSN


# -- the tally, on made-up evidence ------------------------------------------------------------


def _audit(*changes: tuple[str, str | None, str]) -> list[AuditRow]:
    return [
        AuditRow(seq, execution_id, old, new, None, 1, float(seq))
        for seq, (execution_id, old, new) in enumerate(changes)
    ]


def _leaf(execution_id: str, n: int, status: str = "completed", output: Any = None) -> Execution:
    value = expected_output("chaos_leaf", {"n": n}) if output is None else output
    return Execution(execution_id, "chaos_leaf", status, None, {"n": n, "ms": 1}, value)


def _run(kind: str, execution_id: str, pid: int, at: float) -> RunEntry:
    return RunEntry(kind, execution_id, pid, at, "chaos_leaf")


def test_a_clean_run_tallies_to_nothing_but_its_executions() -> None:
    audit = _audit(("a", None, "ready"), ("a", "ready", "running"), ("a", "running", "completed"))
    result = tally(
        audit=audit,
        runs=[_run("start", "a", 1, 1.0), _run("end", "a", 1, 2.0)],
        executions={"a": _leaf("a", 4)},
        acknowledged=["a"],
        output_is_right=output_is_right,
    )
    assert result.executions == 1
    assert result.failures() == []
    assert result.extra_runs == 0


def test_the_tally_tells_each_broken_guarantee_apart() -> None:
    audit = _audit(
        ("twice", None, "running"),
        ("twice", "running", "completed"),
        ("twice", "completed", "completed"),  # a result rewritten
        ("back", None, "ready"),
        ("back", "ready", "running"),
        ("back", "running", "completed"),
        ("back", "completed", "running"),  # a finished execution moved again
        ("born_done", None, "completed"),  # inserted finished
        ("vanished", None, "ready"),
    )
    executions = {
        "twice": _leaf("twice", 1),
        "back": _leaf("back", 2, status="running"),
        "born_done": _leaf("born_done", 3),
        "wrong": _leaf("wrong", 5, output=0),
        "failed": _leaf("failed", 6, status="failed"),
        "poison": _leaf("poison", 7, status="failed"),
    }
    runs = [_run("start", i, 1, 1.0) for i in ("twice", "back", "wrong", "failed", "poison")]
    runs.append(_run("start", "twice", 2, 5.0))
    result = tally(
        audit=audit,
        runs=runs,
        executions=executions,
        acknowledged=["twice", "never_stored"],
        output_is_right=output_is_right,
        expected_to_fail={"poison"},
    )
    assert result.lost == ["never_stored", "vanished"]
    assert result.stuck == ["back"]
    assert result.completed_twice == ["twice"]
    assert result.wrong_outputs == ["failed", "wrong"]
    assert result.extra_runs == 1
    assert result.illegal_transitions == [
        "twice completed->completed",
        "back completed->running",
        "born_done None->completed",
    ]
    assert result.unlogged == ["born_done"]
    assert len(result.failures()) == 6


def test_takeover_delays_follow_the_runs_a_stopped_process_left() -> None:
    runs = [
        _run("start", "orphan", 1, 10.0),
        _run("start", "done_before", 1, 10.0),
        _run("end", "done_before", 1, 11.0),
        _run("start", "abandoned", 1, 11.5),
        _run("start", "orphan", 2, 13.5),
        _run("start", "elsewhere", 3, 10.0),
    ]
    delays, never = takeover_delays(runs, [(12.0, 1)])
    assert delays == [1.5]
    assert never == 1


def test_a_report_prints_its_figures_and_its_verdict() -> None:
    good = Report("kills", "sqlite", tally=tally(
        audit=[], runs=[_run("start", "a", 1, 1.0)], executions={"a": _leaf("a", 1)},
        acknowledged=["a"], output_is_right=output_is_right,
    ), recovery_s=1.25, recovery="what it measures")  # fmt: skip
    bad = Report("pause", "postgres", problems=["2 late results were recorded"])
    skipped = Report("disk", "sqlite", skipped="cannot mount")
    text = format_table([good, bad, skipped])
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["scenario", "backend", "executions"]
    assert lines[2].split() == ["kills", "sqlite", "1", "0", "0", "0", "0", "0", "1.25", "s", "ok"]
    assert lines[3].split()[-1] == "FAILED"
    assert lines[4].split()[-1] == "skipped"
    assert "  FAILED: 2 late results were recorded" in lines
    assert "disk [sqlite]: skipped: cannot mount" in lines
    assert (good.passed, bad.passed) == (True, False)


# -- the audit triggers, on real storages -----------------------------------------------------


@pytest.fixture(params=STORE_BACKENDS)
async def chaos_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        async with sqlite_store(tmp_path) as store:
            yield store
    else:
        async with postgres_store(_dsn(), tmp_path) as store:
            yield store


async def _execute(store: Store, sql: str) -> None:
    """One statement on the store, outside the storage (as a buggy writer would)."""
    if store.sqlite_path is not None:
        conn = sqlite3.connect(store.sqlite_path, isolation_level=None)
        try:
            conn.execute(sql.replace("{table}", "de_executions"))
        finally:
            conn.close()
        return
    import psycopg

    async with await psycopg.AsyncConnection.connect(store.dsn, autocommit=True) as conn:
        await conn.execute(sql.replace("{table}", f'"{store.schema}".de_executions').encode())


async def test_the_audit_sees_a_clean_tree_and_catches_a_rewritten_result(
    chaos_store: Store,
) -> None:
    storage = storage_from_url(chaos_store.url)
    executor = DurableExecutor(storage, background_process_interval_ms=20)
    runs = RunLog(chaos_store.runs_directory)
    tasks = define_tasks(executor, runs)
    try:
        async with executor:
            handle = await executor.enqueue_task(tasks.tree, {"n": 2, "ms": 1})
            await handle.wait_and_get_execution(timeout=20)
        clean = await collect(chaos_store, storage, [handle.execution_id])
        assert clean.tally.executions == 7  # the parent, 5 leaves, the completion task
        assert clean.tally.failures() == []
        assert clean.tally.extra_runs == 0
        assert {(r.old_status, r.new_status) for r in clean.audit} >= {
            (None, "running"),  # inserted claimed by the executor that runs it
            ("running", "waiting_for_children"),
            ("waiting_for_children", "waiting_for_on_run_and_children_complete"),
            ("waiting_for_on_run_and_children_complete", "completed"),
        }
        completions = [r.execution_id for r in clean.audit if r.new_status == "completed"]
        assert sorted(completions) == sorted(clean.executions)  # each completed once

        leaf = next(e for e in clean.executions.values() if e.task_id == "chaos_leaf")
        await _execute(
            chaos_store,
            f"UPDATE {{table}} SET output = '0' WHERE execution_id = '{leaf.execution_id}'",
        )
        await _execute(
            chaos_store,
            f"UPDATE {{table}} SET status = 'ready' WHERE execution_id = '{handle.execution_id}'",
        )
        broken = await collect(chaos_store, storage, [handle.execution_id])
        assert broken.tally.completed_twice == [leaf.execution_id]
        assert broken.tally.stuck == [handle.execution_id]
        assert broken.tally.illegal_transitions == [
            f"{leaf.execution_id} completed->completed",
            f"{handle.execution_id} completed->ready",
        ]
    finally:
        runs.close()
        await storage.close()


# -- the scenarios, short, with real worker processes -----------------------------------------

QUICK_SCENARIOS = [
    ("kills", "sqlite"),
    ("kills", "postgres"),
    ("restarts", "postgres"),
    ("pause", "postgres"),
    ("disk", "sqlite"),
    ("poison", "sqlite"),
]


@pytest.mark.chaos
@pytest.mark.parametrize(("scenario", "backend"), QUICK_SCENARIOS)
async def test_the_quick_chaos_scenario_holds(scenario: str, backend: str) -> None:
    if backend not in BACKENDS:
        pytest.skip(f"{backend} is not available to the tests")
    dsn = _dsn() if "postgres" in BACKENDS else ""
    report = await asyncio.wait_for(
        run_scenario(scenario, backend, quick=True, postgres_dsn=dsn), 55
    )
    details = "\n".join(report.details())
    print(f"\n{details}")
    if report.skipped:
        pytest.skip(report.skipped)
    assert report.passed, details
    assert report.tally is not None
    assert report.tally.executions > 0
    if scenario in ("kills", "pause", "poison"):
        assert report.tally.extra_runs > 0, "nothing was run again: the disturbance missed"
    if scenario == "restarts":
        # The pool tries again 50 ms after a failed connection, then at most every 0.5 s
        # (psycopg_pool's own first retry comes after a second, then two, four...): about
        # 0.1 s on a quiet machine, up to ~0.5 s under load (a loose bound: the mechanism is
        # tested in test_postgres_storage.py).
        assert report.recovery_s is not None
        assert report.recovery_s < 1.0, details
