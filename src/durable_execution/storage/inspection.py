"""What the :class:`~durable_execution.storage.abilities.ExecutionQueries` ability reads by
(filters, counts), and the rules every backend's copy of them must follow (no I/O).

A :class:`ExecutionFilter` selects executions; every condition it holds must match (an empty
filter selects them all). Times are integer milliseconds since the Unix epoch, like every time
of the storage contract. Listing goes newest first, by ``execution_id`` descending (execution
ids begin with their creation time: see :mod:`durable_execution.ids`), which is also the key
of keyset pagination (:class:`ListPosition`): the primary key orders a listing, and no index
of creation times is needed (one would cost every write).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from durable_execution.status import DurableTaskExecutionStatus
from durable_execution.storage.records import ExecutionRecord

__all__ = [
    "COUNT_KEYS",
    "UNSUCCESSFUL_SQL",
    "unsuccessful_or_sql",
    "UNSUCCESSFUL_STATUSES",
    "AttributeValue",
    "CountKey",
    "ExecutionCount",
    "ExecutionFilter",
    "ListPosition",
    "count_records",
    "list_key",
    "matches",
    "status_conditions",
    "sort_counts",
    "time_bounds",
]

AttributeValue = str | int | bool
"""The values an attribute filter compares with: JSON strings, integers and booleans
(``True`` matches ``true`` only, never ``1``)."""

CountKey = Literal["task_id", "status"]
COUNT_KEYS: tuple[CountKey, ...] = ("task_id", "status")
"""What executions can be counted by, in the order the counts are sorted."""

_S = DurableTaskExecutionStatus
UNSUCCESSFUL_STATUSES: tuple[DurableTaskExecutionStatus, ...] = (
    _S.CANCELLED,
    _S.CHILDREN_FAILED,
    _S.FAILED,
    _S.ON_RUN_AND_CHILDREN_COMPLETE_FAILED,
    _S.TIMED_OUT,
)
"""The finished statuses other than ``completed``: the condition of the SQL backends' index
of unsuccessful executions (schema migration 7), which costs nothing to executions that never
take one of them. Never changed: the index's text is made of it."""

UNSUCCESSFUL_SQL = "(" + ", ".join(f"'{s.value}'" for s in UNSUCCESSFUL_STATUSES) + ")"
""":data:`UNSUCCESSFUL_STATUSES` as an SQL list, as the indexes' conditions write it."""


def unsuccessful_or_sql(column: str) -> str:
    """:data:`UNSUCCESSFUL_STATUSES` as a chain of ``OR`` equalities on ``column``: SQLite's
    form of the index condition. SQLite evaluates an ``IN`` list of more than two constants
    through a temporary table built at each execution of a statement, which, in the condition
    of an index every status change evaluates, doubled the CPU time of those updates; the
    equalities cost about a microsecond each."""
    return "(" + " OR ".join(f"{column} = '{s.value}'" for s in UNSUCCESSFUL_STATUSES) + ")"


ListPosition = str
"""Where a page ended: the last execution's ``execution_id``; the next page holds the
executions whose id sorts strictly before it, newest first."""


@dataclass(frozen=True, slots=True)
class ExecutionFilter:
    """Which executions to list or count; each field that is set must match.

    ``statuses``/``task_ids``: one of them (an empty tuple: none matches). ``root_only``:
    executions without parent. ``parent_execution_id``: the children (and completion task)
    of that execution. ``created_*``/``finished_*``: ``after <= time < before`` (an execution
    not finished has no finishing time, so a finished range leaves it out). ``attributes``:
    each key present in the execution's attributes with an equal value of the same JSON type.
    ``id_from``/``id_before``: ``id_from <= execution_id < id_before`` (the executor narrows
    time ranges with them, since ids begin with their creation time; a backend reads them as
    any other condition).
    """

    statuses: tuple[DurableTaskExecutionStatus, ...] | None = None
    task_ids: tuple[str, ...] | None = None
    root_only: bool = False
    parent_execution_id: str | None = None
    created_after_ms: int | None = None
    created_before_ms: int | None = None
    finished_after_ms: int | None = None
    finished_before_ms: int | None = None
    attributes: Mapping[str, AttributeValue] | None = None
    id_from: str | None = None
    id_before: str | None = None

    def attributes_json(self) -> str | None:
        """The attribute conditions as a JSON object (keys sorted), ``None`` without."""
        if not self.attributes:
            return None
        return json.dumps(dict(self.attributes), sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class ExecutionCount:
    """How many executions share one ``task_id`` and/or ``status`` (what
    ``executor.count_executions`` returns a list of). A field the count is not grouped by is
    ``None``."""

    count: int
    task_id: str | None = None
    status: DurableTaskExecutionStatus | None = None


def time_bounds(where: ExecutionFilter) -> list[tuple[str, str, int]]:
    """The time conditions of ``where`` as ``(column, operator, ms)``, for the SQL backends
    (columns ``created_at`` and ``finished_at``; operators ``>=`` and ``<``)."""
    bounds = [
        ("created_at", ">=", where.created_after_ms),
        ("created_at", "<", where.created_before_ms),
        ("finished_at", ">=", where.finished_after_ms),
        ("finished_at", "<", where.finished_before_ms),
    ]
    return [(column, op, ms) for column, op, ms in bounds if ms is not None]


def status_conditions(
    statuses: tuple[DurableTaskExecutionStatus, ...], unsuccessful: str
) -> list[str]:
    """The SQL conditions of a status filter on ``e.status``, values inlined (they are plain
    words): a plan made without the values (PostgreSQL's generic plans) cannot tell that they
    fall within a partial index's condition, and SQLite matches such a condition term by term,
    so a filter of unsuccessful statuses only also repeats ``unsuccessful``, the backend's
    index condition written on ``e.status``."""
    listed = ", ".join(f"'{s.value}'" for s in statuses) or "NULL"
    conditions = [f"e.status IN ({listed})"]
    if statuses and all(s in UNSUCCESSFUL_STATUSES for s in statuses):
        conditions.append(unsuccessful)
    return conditions


def list_key(record: ExecutionRecord) -> ListPosition:
    """The position of ``record`` in a listing (which sorts by it, descending)."""
    return record.execution_id


def _same_json(stored: object, wanted: AttributeValue) -> bool:
    if isinstance(wanted, bool) or isinstance(stored, bool):
        return stored is wanted
    return type(stored) is type(wanted) and stored == wanted


def _attributes_match(text: str | None, wanted: Mapping[str, AttributeValue]) -> bool:
    stored = json.loads(text) if text else {}
    if not isinstance(stored, dict):
        return False
    return all(key in stored and _same_json(stored[key], value) for key, value in wanted.items())


def _in_range(value: int | None, after: int | None, before: int | None) -> bool:
    if after is None and before is None:
        return True
    if value is None:
        return False
    return (after is None or value >= after) and (before is None or value < before)


def matches(record: ExecutionRecord, where: ExecutionFilter) -> bool:
    """Whether ``record`` is selected by ``where`` (the reference the SQL copies follow)."""
    return (
        (where.statuses is None or record.status in where.statuses)
        and (where.task_ids is None or record.task_id in where.task_ids)
        and (not where.root_only or record.parent_execution_id is None)
        and (
            where.parent_execution_id is None
            or record.parent_execution_id == where.parent_execution_id
        )
        and _in_range(record.created_at_ms, where.created_after_ms, where.created_before_ms)
        and _in_range(record.finished_at_ms, where.finished_after_ms, where.finished_before_ms)
        and (not where.attributes or _attributes_match(record.attributes, where.attributes))
        and (where.id_from is None or record.execution_id >= where.id_from)
        and (where.id_before is None or record.execution_id < where.id_before)
    )


def count_records(
    records: Iterable[ExecutionRecord], by: tuple[CountKey, ...]
) -> list[ExecutionCount]:
    """The counts of ``records`` grouped by ``by``, sorted by task id then status (value)."""
    counts: dict[tuple[str | None, DurableTaskExecutionStatus | None], int] = {}
    for record in records:
        key = (
            record.task_id if "task_id" in by else None,
            record.status if "status" in by else None,
        )
        counts[key] = counts.get(key, 0) + 1
    if not by:
        return [ExecutionCount(counts.get((None, None), 0))]
    return sort_counts(ExecutionCount(n, task, status) for (task, status), n in counts.items())


def sort_counts(counts: Iterable[ExecutionCount]) -> list[ExecutionCount]:
    """``counts`` in the order every backend returns them: by task id, then status value."""
    return sorted(counts, key=lambda c: (c.task_id or "", c.status.value if c.status else ""))
