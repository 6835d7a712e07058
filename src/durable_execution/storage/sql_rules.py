"""The transition rules both SQL backends apply inside their statements, written once.

Each fragment is the SQL twin of a Python rule (``transitions.py``, ``records.py``), with the
row's alias and the values as parameters; SQLite and PostgreSQL both take the same text.
``tests/test_sql_rules.py`` evaluates every fragment on both databases for every combination
of its inputs and checks that it agrees with its Python twin.
"""

from __future__ import annotations

from collections.abc import Iterable

from durable_execution.status import FINISHED_STATUSES
from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.transitions import SUSPECT_LEASE_EXPIRIES

__all__ = [
    "FINISHED_SQL",
    "advanceable_sql",
    "counted_failures_sql",
    "expiry_crashes_sql",
    "final_sql",
    "finish_close_state_sql",
    "outcome_close_state_sql",
    "renewable_sql",
    "renewed_expires_sql",
    "status_list_sql",
    "suspect_sql",
]


def status_list_sql(statuses: Iterable[S]) -> str:
    """``statuses`` as a parenthesized SQL list of literals, in the order given."""
    return "(" + ", ".join(f"'{s.value}'" for s in statuses) + ")"


FINISHED_SQL = status_list_sql(sorted(FINISHED_STATUSES))
"""The six finished statuses as a SQL list, for ``status [NOT] IN ...`` (twin of
:data:`~durable_execution.status.FINISHED_STATUSES`)."""


def _col(row: str, column: str) -> str:
    return f"{row}.{column}" if row else column


def final_sql(row: str = "") -> str:
    """Whether the row can never change again by the executors' work: finished, closed, no
    stop request pending (twin of ``executor.finished.is_final``; only an operator's retry or
    purge touches such a row). Booleans as SQLite's 0/1 work too."""
    return (
        f"({_col(row, 'status')} IN {FINISHED_SQL} AND {_col(row, 'close_state')} = 'closed' "
        f"AND NOT {_col(row, 'needs_promise_cancellation')})"
    )


def advanceable_sql(row: str = "") -> str:
    """Whether the parent in ``row`` can move past its children (twin of
    :func:`~durable_execution.storage.transitions.is_advanceable`)."""
    return (
        f"{_col(row, 'status')} = 'waiting_for_children' AND "
        f"({_col(row, 'unfinished_children')} = 0 OR {_col(row, 'failed_children')} > 0)"
    )


def counted_failures_sql(row: str, failed: str) -> str:
    """How many of ``failed`` closed children that did not complete count in the
    ``failed_children`` of the parent in ``row``: all of them, none under the
    ``all_settled`` policy (twin of :func:`~durable_execution.storage.transitions.fails_parent`)."""
    return f"CASE WHEN {_col(row, 'children_policy')} = 'all_settled' THEN 0 ELSE {failed} END"


def finish_close_state_sql(row: str, status: str, unfinished: str | None = None) -> str:
    """The ``close_state`` of the execution in ``row`` once it finishes with ``status`` (an SQL
    expression): ``closed`` when there is nothing to close, else ``ready`` (twin of
    :func:`~durable_execution.storage.records.closes_at_once`). ``unfinished`` is its count of
    unfinished children after the change, by default the row's."""
    if unfinished is None:
        unfinished = _col(row, "unfinished_children")
    return (
        f"CASE WHEN {_col(row, 'parent_execution_id')} IS NULL "
        f"AND ({status} = 'completed' OR {unfinished} = 0) THEN 'closed' ELSE 'ready' END"
    )


def outcome_close_state_sql(row: str, status: str, parent_in_call: str) -> str:
    """The ``close_state`` of the execution in ``row`` once an outcome finishes it with
    ``status``: ``closed`` when that write closes it, a root with nothing to close or a child
    whose closure would only update its parent (``parent_in_call``: an SQL condition, whether
    the parent has an outcome in the same call), else ``ready`` (twin of
    :func:`~durable_execution.storage.records.closes_at_once` and
    :func:`~durable_execution.storage.transitions.closes_with_outcome`)."""
    parent = _col(row, "parent_execution_id")
    return (
        f"CASE WHEN ({status} = 'completed' OR {_col(row, 'unfinished_children')} = 0) "
        f"AND ({parent} IS NULL OR (NOT {_col(row, 'is_finalize')} AND NOT ({parent_in_call}))) "
        "THEN 'closed' ELSE 'ready' END"
    )


def suspect_sql(row: str = "") -> str:
    """Whether the execution in ``row`` is a suspect (twin of
    :func:`~durable_execution.storage.transitions.is_suspect`). Written without an alias it is
    the predicate of the ready suspects' partial index (SQLite uses such an index only for a
    query that says the same)."""
    return f"{_col(row, 'lease_expiries')} >= {SUSPECT_LEASE_EXPIRIES}"


def renewable_sql(row: str, now: str) -> str:
    """Whether the lease of the running execution in ``row`` may still be renewed at ``now``;
    the caller also matches its owner and lease token (twin of
    :func:`~durable_execution.storage.transitions.renewal_applies`)."""
    return f"{_col(row, 'status')} = 'running' AND {_col(row, 'expires_at')} >= {now}"


def renewed_expires_sql(row: str, now: str, lease: str) -> str:
    """The lease end of the execution in ``row`` renewed at ``now`` for ``lease`` ms: never
    past its backstop (twin of :func:`~durable_execution.storage.transitions.renewed_expiry`,
    for a renewable row, whose ``expires_at`` is set)."""
    backstop = f"COALESCE({_col(row, 'timeout_at')}, {_col(row, 'expires_at')})"
    return f"CASE WHEN {now} + {lease} < {backstop} THEN {now} + {lease} ELSE {backstop} END"


def expiry_crashes_sql(row: str, max_expiries: str) -> str:
    """Whether the execution in ``row`` fails as crashed when its lease expires once more
    (twin of :func:`~durable_execution.storage.transitions.expiry_crashes`)."""
    return f"({max_expiries} IS NOT NULL AND {_col(row, 'lease_expiries')} + 1 >= {max_expiries})"
