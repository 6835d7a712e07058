"""The PostgreSQL storage's queries (the
:class:`~durable_execution.storage.abilities.ExecutionQueries` ability), mixed into
:class:`~durable_execution.storage.postgres.PostgresStorage`.

Each is one statement. A listing's text depends on which filters are set (so each
combination is prepared once per connection). It walks the primary key newest first (ids
begin with their creation time), or an index of the unsuccessful executions (schema migration
7) when only those are asked for, or the children of one parent; the other filters are
checked on the way, so a page of rare executions reads every row newer than the last it
holds (no index of every row serves them: each would cost every status change). Live
statuses may use the claims' own partial indexes where the planner finds them cheaper.
docs/postgres.md shows the plans on 1,000,000 rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import tuple_row

from durable_execution.status import DurableTaskExecutionStatus
from durable_execution.storage.inspection import (
    UNSUCCESSFUL_SQL,
    CountKey,
    ExecutionCount,
    ExecutionFilter,
    ListPosition,
    sort_counts,
    status_conditions,
    time_bounds,
)
from durable_execution.storage.postgres.fragments import cols
from durable_execution.storage.postgres.queries import CHILD_IDS
from durable_execution.storage.postgres.rows import record_from_row
from durable_execution.storage.postgres.runtime import Runtime
from durable_execution.storage.postgres.schema import Names
from durable_execution.storage.records import ExecutionRecord

__all__ = ["PostgresExecutionQueries", "filter_sql", "list_sql", "tree_sql"]

_SELECT = f"SELECT {cols('e')}, {CHILD_IDS.format(t='{t}', alias='e')} FROM {{t}} AS e"
# The rows of the tree are looked up by primary key (``= ANY(ARRAY(...))``, as in
# queries.py): joined to the recursive part instead, whose size the planner cannot guess, a
# table with stale statistics got a sequential scan.
_TREE = f"""
WITH RECURSIVE tree(execution_id) AS (
    SELECT execution_id FROM {{t}} WHERE execution_id = %(id)s
    UNION ALL
    SELECT k.execution_id FROM {{t}} AS k JOIN tree ON k.parent_execution_id = tree.execution_id
)
{_SELECT} WHERE e.execution_id = ANY(ARRAY(SELECT execution_id FROM tree))
ORDER BY e.execution_id <> %(id)s
"""


# Containment of a flat object of scalars: each key present with an equal value of the same
# JSON type (no index: checked on the way).
_ATTRIBUTES = "e.attributes IS NOT NULL AND e.attributes::jsonb @> %(attributes)s::jsonb"


def filter_sql(where: ExecutionFilter) -> tuple[list[str], dict[str, Any]]:
    """The conditions (on ``e``, the executions table) and parameters of ``where``."""
    conditions: list[str] = []
    params: dict[str, Any] = {}

    def add(condition: str, **values: Any) -> None:
        conditions.append(condition)
        params.update(values)

    if where.statuses is not None:
        conditions.extend(status_conditions(where.statuses, f"e.status IN {UNSUCCESSFUL_SQL}"))
    if where.task_ids is not None:
        # One task: an equality, so that an index led by the task is read in id order.
        if len(where.task_ids) == 1:
            add("e.task_id = %(task_ids)s", task_ids=where.task_ids[0])
        else:
            add("e.task_id = ANY(%(task_ids)s::text[])", task_ids=list(where.task_ids))
    if where.root_only:
        add("e.parent_execution_id IS NULL")
    if where.parent_execution_id is not None:
        add("e.parent_execution_id = %(parent)s", parent=where.parent_execution_id)
    attributes = where.attributes_json()
    if attributes is not None:
        add(_ATTRIBUTES, attributes=attributes)
    ranges = [
        *time_bounds(where),
        ("execution_id", ">=", where.id_from),
        ("execution_id", "<", where.id_before),
    ]
    for i, (column, operator, value) in enumerate(ranges):
        if value is not None:
            add(f"e.{column} {operator} %(range{i})s", **{f"range{i}": value})
    return conditions, params


def _where(conditions: Sequence[str]) -> str:
    return f" WHERE {' AND '.join(conditions)}" if conditions else ""


def list_sql(
    names: Names, where: ExecutionFilter, *, limit: int, after: ListPosition | None
) -> tuple[str, dict[str, Any]]:
    """The listing statement of ``where`` and its parameters."""
    conditions, params = filter_sql(where)
    if after is not None:
        conditions.append("e.execution_id < %(after)s")
        params["after"] = after
    params["limit"] = limit
    # One parent's children: read through the children index and sorted (an expression no
    # index gives, so that a generic plan, blind to how rare one parent is, does not walk
    # the primary key instead: 1.5 s on 1,000,000 rows).
    order = "e.execution_id || ''" if where.parent_execution_id is not None else "e.execution_id"
    template = f"{_SELECT}{_where(conditions)} ORDER BY {order} DESC LIMIT %(limit)s"
    return _render(template, names), params


def tree_sql(names: Names) -> str:
    """The statement that reads a tree (parameter ``id``: the execution at its top)."""
    return _render(_TREE, names)


def _render(template: str, names: Names) -> str:
    return sql.SQL(template).format(t=names.table).as_string(None)


class PostgresExecutionQueries:
    """The queries, each one statement on a pooled connection."""

    _names: Names
    _runtime: Runtime

    async def _query(
        self, action: str, query: str, params: dict[str, Any], *, whole_table: bool = False
    ) -> list[Any]:
        """The rows of one statement, in a transaction without JIT compilation (a count over
        many rows would pay a few hundred milliseconds for it); ``whole_table``: with
        sequential scans allowed, for a statement that reads every row (a count without
        filter: 0.3 s on 1,000,000 rows instead of 2.4 s through the primary key)."""

        async def body(conn: AsyncConnection[Any]) -> list[Any]:
            async with conn.transaction():
                await conn.execute("SET LOCAL jit = off")
                if whole_table:
                    await conn.execute("SET LOCAL enable_seqscan = on")
                cur = conn.cursor(row_factory=tuple_row)
                await cur.execute(query, params)
                return await cur.fetchall()

        return await self._runtime.run(action, body)

    async def list_executions(
        self, where: ExecutionFilter, *, limit: int, after: ListPosition | None = None
    ) -> list[ExecutionRecord]:
        query, params = list_sql(self._names, where, limit=limit, after=after)
        rows = await self._query("list executions", query, params)
        return [record_from_row(row, row[-1]) for row in rows]

    async def get_execution_tree(self, root_execution_id: str) -> list[ExecutionRecord]:
        rows = await self._query(
            "read an execution tree", tree_sql(self._names), {"id": root_execution_id}
        )
        return [record_from_row(row, row[-1]) for row in rows]

    async def count_executions(
        self, where: ExecutionFilter, *, by: tuple[CountKey, ...]
    ) -> list[ExecutionCount]:
        conditions, params = filter_sql(where)
        keys = [f"e.{key}" for key in by]
        group = f" GROUP BY {', '.join(keys)}" if keys else ""
        template = f"SELECT {', '.join([*keys, 'count(*)'])} FROM {{t}} AS e"
        template += _where(conditions) + group
        rows = await self._query(
            "count executions",
            _render(template, self._names),
            params,
            whole_table=not conditions,
        )
        return sort_counts(_count(by, row) for row in rows)


def _count(by: tuple[CountKey, ...], row: Sequence[Any]) -> ExecutionCount:
    values = dict(zip(by, row, strict=False))
    status = values.get("status")
    return ExecutionCount(
        count=int(row[-1]),
        task_id=values.get("task_id"),
        status=None if status is None else DurableTaskExecutionStatus(status),
    )
