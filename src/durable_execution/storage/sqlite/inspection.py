"""The SQLite storage's queries (the
:class:`~durable_execution.storage.abilities.ExecutionQueries` ability), mixed into
:class:`~durable_execution.storage.sqlite.SQLiteStorage`.

Each runs in one read transaction on a reader connection (see ``readers.py``), so it neither
waits for the writes nor sees half of one. A listing walks the primary key newest first (or,
for unsuccessful statuses, the index of schema migration 7, in the same order; for one
parent, its children) and stops at the page's end; a filter without an index of its own is
checked on the way, so a page of rare executions reads every row newer than the last it
holds.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from durable_execution.status import DurableTaskExecutionStatus
from durable_execution.storage.inspection import (
    AttributeValue,
    CountKey,
    ExecutionCount,
    ExecutionFilter,
    ListPosition,
    sort_counts,
    status_conditions,
    time_bounds,
    unsuccessful_or_sql,
)
from durable_execution.storage.records import ExecutionRecord
from durable_execution.storage.rows import COLUMNS, record_from_row
from durable_execution.storage.sqlite.schema import TABLE

__all__ = ["SQLiteExecutionQueries", "filter_sql", "list_sql"]

T = TypeVar("T")

_SELECT = f"SELECT {', '.join('e.' + c for c in COLUMNS)} FROM {TABLE} AS e"
# One key of the attribute filter: present, of the same JSON type, with the same value
# (json_each names booleans' types 'true' and 'false').
_ATTRIBUTE = (
    "EXISTS (SELECT 1 FROM json_each(e.attributes) AS a "
    "WHERE a.key = ? AND a.type = ? AND a.atom = ?)"
)
_TREE = f"""
WITH RECURSIVE tree(id) AS (
    SELECT execution_id FROM {TABLE} WHERE execution_id = ?
    UNION ALL
    SELECT k.execution_id FROM {TABLE} AS k JOIN tree ON k.parent_execution_id = tree.id
)
SELECT id FROM tree
"""


def _json_type(value: AttributeValue) -> tuple[str, Any]:
    if isinstance(value, bool):
        return ("true" if value else "false", int(value))
    if isinstance(value, int):
        return ("integer", value)
    return ("text", value)


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def filter_sql(where: ExecutionFilter) -> tuple[list[str], list[Any]]:
    """The conditions (on ``e``, the executions table) and parameters of ``where``."""
    conditions: list[str] = []
    params: list[Any] = []

    def add(condition: str, *values: Any) -> None:
        conditions.append(condition)
        params.extend(values)

    if where.statuses is not None:
        conditions.extend(status_conditions(where.statuses, unsuccessful_or_sql("e.status")))
    if where.task_ids is not None:
        add(f"e.task_id IN ({_marks(len(where.task_ids))})", *where.task_ids)
    if where.root_only:
        add("e.parent_execution_id IS NULL")
    if where.parent_execution_id is not None:
        add("e.parent_execution_id = ?", where.parent_execution_id)
    for column, operator, ms in time_bounds(where):
        add(f"e.{column} {operator} ?", ms)
    for key, value in sorted((where.attributes or {}).items()):
        add(_ATTRIBUTE, key, *_json_type(value))
    if where.id_from is not None:
        add("e.execution_id >= ?", where.id_from)
    if where.id_before is not None:
        add("e.execution_id < ?", where.id_before)
    return conditions, params


def _where(conditions: Sequence[str]) -> str:
    return f" WHERE {' AND '.join(conditions)}" if conditions else ""


def list_sql(
    where: ExecutionFilter, *, limit: int, after: ListPosition | None
) -> tuple[str, list[Any]]:
    """The listing statement of ``where`` and its parameters."""
    conditions, params = filter_sql(where)
    if after is not None:
        conditions.append("e.execution_id < ?")
        params.append(after)
    query = f"{_SELECT}{_where(conditions)} ORDER BY e.execution_id DESC LIMIT ?"
    params.append(limit)
    return query, params


def _in_snapshot(conn: sqlite3.Connection, body: Callable[[], T]) -> T:
    conn.execute("BEGIN")
    try:
        return body()
    finally:
        conn.execute("COMMIT")


class SQLiteExecutionQueries:
    """The queries, each one read transaction (a statement, plus the children's ids)."""

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError  # SQLiteStorage runs ``fn`` on a reader connection

    @staticmethod
    def _load(conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, ExecutionRecord]:
        raise NotImplementedError  # SQLiteStorage's

    @staticmethod
    def _child_ids(conn: sqlite3.Connection, parent_ids: Sequence[str]) -> dict[str, list[str]]:
        raise NotImplementedError  # SQLiteStorage's

    def _with_child_ids(
        self, conn: sqlite3.Connection, records: list[ExecutionRecord]
    ) -> list[ExecutionRecord]:
        children = self._child_ids(conn, [r.execution_id for r in records])
        for record in records:
            record.child_execution_ids = tuple(children.get(record.execution_id, ()))
        return records

    async def list_executions(
        self, where: ExecutionFilter, *, limit: int, after: ListPosition | None = None
    ) -> list[ExecutionRecord]:
        query, params = list_sql(where, limit=limit, after=after)

        def read(conn: sqlite3.Connection) -> list[ExecutionRecord]:
            def body() -> list[ExecutionRecord]:
                rows = conn.execute(query, params).fetchall()
                return self._with_child_ids(conn, [record_from_row(row) for row in rows])

            return _in_snapshot(conn, body)

        return await self._read(read)

    async def get_execution_tree(self, root_execution_id: str) -> list[ExecutionRecord]:
        def read(conn: sqlite3.Connection) -> list[ExecutionRecord]:
            def body() -> list[ExecutionRecord]:
                ids = [row[0] for row in conn.execute(_TREE, (root_execution_id,))]
                records = self._load(conn, ids)
                return self._with_child_ids(conn, [records[i] for i in ids if i in records])

            return _in_snapshot(conn, body)

        return await self._read(read)

    async def count_executions(
        self, where: ExecutionFilter, *, by: tuple[CountKey, ...]
    ) -> list[ExecutionCount]:
        conditions, params = filter_sql(where)
        keys = [f"e.{key}" for key in by]
        group = f" GROUP BY {', '.join(keys)}" if keys else ""
        query = f"SELECT {', '.join([*keys, 'count(*)'])} FROM {TABLE} AS e"
        query += _where(conditions) + group

        def read(conn: sqlite3.Connection) -> list[ExecutionCount]:
            return [_count(by, row) for row in conn.execute(query, params)]

        return sort_counts(await self._read(read))


def _count(by: tuple[CountKey, ...], row: Sequence[Any]) -> ExecutionCount:
    values = dict(zip(by, row, strict=False))
    status = values.get("status")
    return ExecutionCount(
        count=row[-1],
        task_id=values.get("task_id"),
        status=None if status is None else DurableTaskExecutionStatus(status),
    )
