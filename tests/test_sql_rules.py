"""Each rule written twice agrees with itself: the SQL fragments of ``sql_rules`` with their
Python twins (evaluated on SQLite and PostgreSQL for every combination of their inputs: the
state rules, then the lease rules), and the executor's ``outcome_work`` with the work an
applied outcome leaves in the record."""

from __future__ import annotations

import dataclasses
import itertools
import sqlite3
from typing import Any

import pytest

from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.records import (
    CloseState,
    ExecutionOutcome,
    NewExecution,
    WorkKind,
    closes_at_once,
)
from durable_execution.storage.sql_rules import (
    FINISHED_SQL,
    advanceable_sql,
    counted_failures_sql,
    expiry_crashes_sql,
    finish_close_state_sql,
    outcome_close_state_sql,
    renewable_sql,
    renewed_expires_sql,
    suspect_sql,
)
from durable_execution.storage.transitions import (
    apply_outcome,
    apply_outcome_close,
    closes_with_outcome,
    expiry_crashes,
    fails_parent,
    is_advanceable,
    is_suspect,
    new_record,
    outcome_work,
    record_work,
    renewal_applies,
    renewed_expiry,
)

from .backends import BACKENDS

# Every combination of the inputs the fragments read.
CASES = list(
    itertools.product([None, "te_parent"], list(S), [0, 1, 3], [0, 1], [False, True], [False, True])
)
EXPRESSIONS = {
    "advanceable": f"CASE WHEN {advanceable_sql('r')} THEN 1 ELSE 0 END",
    "close_state": finish_close_state_sql("r", "r.status"),
    "finished": f"CASE WHEN r.status IN {FINISHED_SQL} THEN 1 ELSE 0 END",
    "outcome_close_state": outcome_close_state_sql("r", "r.status", "r.parent_in_call"),
}


def expected(case: tuple[Any, ...]) -> tuple[int, str, int, str]:
    parent, status, unfinished, failed, is_completion, parent_in_call = case
    record = _claimed(parent, unfinished)
    record.is_completion = is_completion
    with_outcome = closes_at_once(parent, status, unfinished) or closes_with_outcome(
        record, status, parent_in_call=parent_in_call
    )
    return (
        int(is_advanceable(status, unfinished, failed)),
        ("closed" if closes_at_once(parent, status, unfinished) else "ready"),
        int(status.is_finished),
        ("closed" if with_outcome else "ready"),
    )


def query() -> tuple[str, str]:
    create = (
        "CREATE TEMPORARY TABLE r (n integer, parent_execution_id text, status text, "
        "unfinished_children integer, failed_children integer, is_finalize boolean, "
        "parent_in_call boolean)"
    )
    select = f"SELECT n, {', '.join(EXPRESSIONS.values())} FROM r ORDER BY n"
    return create, select


def test_the_sql_fragments_agree_with_python_on_sqlite() -> None:
    create, select = query()
    conn = sqlite3.connect(":memory:")
    conn.execute(create)
    conn.executemany(
        "INSERT INTO r VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(n, p, s.value, u, f, c, i) for n, (p, s, u, f, c, i) in enumerate(CASES)],
    )
    rows = conn.execute(select).fetchall()
    conn.close()
    assert [tuple(row[1:]) for row in rows] == [expected(case) for case in CASES]


@pytest.mark.skipif("postgres" not in BACKENDS, reason="PostgreSQL tests are turned off")
async def test_the_sql_fragments_agree_with_python_on_postgres() -> None:
    from .pg import admin_connection

    create, select = query()
    async with await admin_connection() as conn:
        await conn.execute(create)
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO r VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [(n, p, s.value, u, f, c, i) for n, (p, s, u, f, c, i) in enumerate(CASES)],
            )
        rows = await (await conn.execute(select)).fetchall()
    assert [tuple(row[1:]) for row in rows] == [expected(case) for case in CASES]


# The children policy: every status of a closed child under each policy of its parent.
POLICY_CASES = list(itertools.product(list(S), ["fail_fast", "all_settled"]))
POLICY_CREATE = "CREATE TEMPORARY TABLE p (n integer, status text, children_policy text)"
POLICY_SELECT = (
    "SELECT n, "
    + counted_failures_sql("p", "CASE WHEN p.status <> 'completed' THEN 1 ELSE 0 END")
    + " FROM p ORDER BY n"
)
POLICY_ROWS = [(n, status.value, policy) for n, (status, policy) in enumerate(POLICY_CASES)]
POLICY_EXPECTED = [(n, int(fails_parent(s, p))) for n, (s, p) in enumerate(POLICY_CASES)]


def test_counted_failures_agree_with_python_on_sqlite() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute(POLICY_CREATE)
    conn.executemany("INSERT INTO p VALUES (?, ?, ?)", POLICY_ROWS)
    rows = conn.execute(POLICY_SELECT).fetchall()
    conn.close()
    assert rows == POLICY_EXPECTED
    assert sum(counted for _, counted in rows) == len(S) - 1  # fail_fast only, all but one


@pytest.mark.skipif("postgres" not in BACKENDS, reason="PostgreSQL tests are turned off")
async def test_counted_failures_agree_with_python_on_postgres() -> None:
    from .pg import admin_connection

    async with await admin_connection() as conn:
        await conn.execute(POLICY_CREATE)
        async with conn.cursor() as cur:
            await cur.executemany("INSERT INTO p VALUES (%s, %s, %s)", POLICY_ROWS)
        rows = await (await conn.execute(POLICY_SELECT)).fetchall()
    assert [tuple(row) for row in rows] == POLICY_EXPECTED


def _claimed(parent: str | None, unfinished: int = 0) -> Any:
    new = NewExecution("te_1", "t", "null", 0, parent_execution_id=parent, root_execution_id=parent)
    record = new_record(dataclasses.replace(new, claimed_by="ex", claim_lease_ms=10), 0)
    record.unfinished_children = unfinished
    return record


def _child(claimed: bool, completion: bool = False) -> NewExecution:
    child = NewExecution(
        "te_c", "c", "null", 0, parent_execution_id="te_1", is_completion=completion
    )
    return dataclasses.replace(child, claimed_by="ex" if claimed else None)


OUTCOMES = [
    dict(status=S.READY, error=None, start_at_ms=5),
    *(dict(status=s, output="1") for s in (S.COMPLETED, S.FAILED, S.TIMED_OUT, S.CANCELLED)),
    dict(status=S.WAITING_FOR_CHILDREN, children=(_child(True),)),
    dict(status=S.WAITING_FOR_CHILDREN, children=(_child(False), _child(True))),
    dict(status=S.WAITING_FOR_ON_RUN_AND_CHILDREN_COMPLETE, children=(_child(False, True),)),
    dict(status=S.WAITING_FOR_ON_RUN_AND_CHILDREN_COMPLETE, children=(_child(True, True),)),
]


@pytest.mark.parametrize("parent", [None, "te_parent"])
@pytest.mark.parametrize("unfinished", [0, 2])
@pytest.mark.parametrize("fields", OUTCOMES, ids=lambda f: f["status"].value)
def test_outcome_work_is_the_work_the_applied_outcome_leaves(
    parent: str | None, unfinished: int, fields: dict[str, Any]
) -> None:
    record = _claimed(parent, unfinished)
    outcome = ExecutionOutcome("te_1", record.lease_token, S.RUNNING, **fields)
    predicted = outcome_work(record, outcome)
    applied = record.copy()
    apply_outcome(applied, outcome, 1)
    closed_with_parent = apply_outcome_close(applied, None, 1)
    work = record_work(applied)
    if any(new.claimed_by is None for new in outcome.inserted()):
        work.add(WorkKind.READY)
    if closed_with_parent:  # its parent may have no unfinished child left
        work.add(WorkKind.ADVANCE)
    assert predicted == work
    if outcome.status.is_finished:
        assert (WorkKind.CLOSE in work) is (applied.close_state is CloseState.READY)
        assert closed_with_parent is (parent is not None and applied.is_closed)


def test_outcome_work_with_a_successor_closes_the_step_at_once() -> None:
    record = _claimed("te_parent")
    successor = dataclasses.replace(_child(False), parent_execution_id="te_parent")
    outcome = ExecutionOutcome("te_1", 1, S.RUNNING, S.COMPLETED, output="1", successor=successor)
    assert outcome_work(record, outcome) == {WorkKind.READY}
    claimed = dataclasses.replace(successor, claimed_by="ex")
    outcome = dataclasses.replace(outcome, successor=claimed)
    assert outcome_work(record, outcome) == set()


# The lease rules: every combination of status, lease end, backstop, expiries and limit.
LEASE_CASES = list(
    itertools.product(
        [S.RUNNING, S.READY], [990, 1000, 1010], [None, 1005, 3000], [0, 1, 2, 5], [None, 2, 3]
    )
)
NOW, LEASE = 1000, 500
LEASE_EXPRESSIONS = {
    "renewable": f"CASE WHEN {renewable_sql('r', str(NOW))} THEN 1 ELSE 0 END",
    "renewed": renewed_expires_sql("r", str(NOW), str(LEASE)),
    "suspect": f"CASE WHEN {suspect_sql('r')} THEN 1 ELSE 0 END",
    "crashes": f"CASE WHEN {expiry_crashes_sql('r', 'r.max_expiries')} THEN 1 ELSE 0 END",
}


def lease_expected(case: tuple[Any, ...]) -> tuple[Any, ...]:
    status, expires_at, timeout_at, expiries, max_expiries = case
    record = _claimed(None)
    record.status, record.expires_at_ms, record.timeout_at_ms = status, expires_at, timeout_at
    return (
        int(renewal_applies(record, record.executor_id or "", record.lease_token, NOW)),
        renewed_expiry(NOW, LEASE, timeout_at, expires_at),
        int(is_suspect(expiries)),
        int(expiry_crashes(expiries, max_expiries)),
    )


def lease_query() -> tuple[str, str, str]:
    create = (
        "CREATE TEMPORARY TABLE r (n integer, status text, expires_at bigint, "
        "timeout_at bigint, lease_expiries integer, max_expiries integer)"
    )
    select = f"SELECT n, {', '.join(LEASE_EXPRESSIONS.values())} FROM r ORDER BY n"
    return create, "INSERT INTO r VALUES ({0}, {0}, {0}, {0}, {0}, {0})", select


def _lease_rows() -> list[tuple[Any, ...]]:
    return [(n, s.value, e, t, x, m) for n, (s, e, t, x, m) in enumerate(LEASE_CASES)]


def test_the_lease_fragments_agree_with_python_on_sqlite() -> None:
    create, insert, select = lease_query()
    conn = sqlite3.connect(":memory:")
    conn.execute(create)
    conn.executemany(insert.format("?"), _lease_rows())
    rows = conn.execute(select).fetchall()
    conn.close()
    assert [tuple(row[1:]) for row in rows] == [lease_expected(case) for case in LEASE_CASES]


@pytest.mark.skipif("postgres" not in BACKENDS, reason="PostgreSQL tests are turned off")
async def test_the_lease_fragments_agree_with_python_on_postgres() -> None:
    from .pg import admin_connection

    create, insert, select = lease_query()
    async with await admin_connection() as conn:
        await conn.execute(create)
        async with conn.cursor() as cur:
            await cur.executemany(insert.format("%s"), _lease_rows())
        rows = await (await conn.execute(select)).fetchall()
    assert [tuple(row[1:]) for row in rows] == [lease_expected(case) for case in LEASE_CASES]
