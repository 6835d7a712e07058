"""The SQLite storage's operations on whole trees: an operator's retry (the
:class:`~durable_execution.storage.abilities.TreeRetry` ability) and purging (the
:class:`~durable_execution.storage.abilities.ExecutionPurge` ability), mixed into
:class:`~durable_execution.storage.sqlite.SQLiteStorage`.

Each call is one ``BEGIN IMMEDIATE`` transaction (the file's write lock): nothing else writes
meanwhile, in this process or another, so a retry, a cancellation and a purge of one tree are
serialized. A retry loads the tree with a recursive query over the children index and applies
:mod:`durable_execution.storage.retry_rules` to the rows; a purge batch walks the primary key
from where the previous batch stopped (ids are time-ordered), and needs no index of its own.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import TypeVar

from durable_execution.errors import (
    DurableExecutionNotFoundError,
)
from durable_execution.ids import execution_id_floor
from durable_execution.storage.records import (
    ExecutionRecord,
    PurgeBatch,
    WorkKind,
    roots_to_purge,
)
from durable_execution.storage.retry_rules import check_retryable, reopen_tree, unique_id_taken
from durable_execution.storage.rows import COLUMNS, record_from_row
from durable_execution.storage.sql_rules import final_sql
from durable_execution.storage.sqlite.schema import TABLE, record_to_params
from durable_execution.storage.sqlite.statements import UPDATE
from durable_execution.storage.transitions import record_work

__all__ = ["SQLiteTrees"]

T = TypeVar("T")

# The root and every execution under it (children and completion tasks: both name their
# parent), through the children index.
_TREE = (
    f"WITH RECURSIVE tree(id) AS (SELECT ?1 UNION ALL SELECT e.execution_id FROM {TABLE} AS e "
    "JOIN tree ON e.parent_execution_id = tree.id) "
    f"SELECT {', '.join(COLUMNS)} FROM {TABLE} WHERE execution_id IN (SELECT id FROM tree)"
)
_CHILD_IDS = (
    f"SELECT execution_id FROM {TABLE} WHERE parent_execution_id = ? AND is_finalize = 0 "
    "ORDER BY index_in_parent"
)
# One batch's scan: the next executions by id, each with whether it is a root to purge.
_SCAN = (
    "SELECT execution_id, parent_execution_id IS NULL AND finished_at < ?3 "
    f"AND {final_sql()} FROM {TABLE} "
    "WHERE execution_id > ?1 AND execution_id < ?2 ORDER BY execution_id LIMIT ?4"
)
# The trees of the roots (a JSON array): each execution with its root and whether it is final.
_TREES = (
    "WITH RECURSIVE tree(root, id) AS (SELECT value, value FROM json_each(?1) UNION ALL "
    f"SELECT tree.root, e.execution_id FROM {TABLE} AS e "
    "JOIN tree ON e.parent_execution_id = tree.id) "
    f"SELECT tree.root, tree.id, {final_sql('e')} FROM tree JOIN {TABLE} AS e "
    "ON e.execution_id = tree.id"
)
_DELETE = f"DELETE FROM {TABLE} WHERE execution_id IN (SELECT value FROM json_each(?1))"


class SQLiteTrees:
    """The abilities' operations, each in one write transaction."""

    async def _write(self, body: Callable[[sqlite3.Connection, set[WorkKind]], T]) -> T:
        raise NotImplementedError  # SQLiteStorage runs ``body`` in a write transaction

    # -- abilities.TreeRetry -----------------------------------------------------------------

    async def retry_execution_tree(self, execution_id: str, *, now_ms: int) -> ExecutionRecord:
        def body(conn: sqlite3.Connection, kinds: set[WorkKind]) -> ExecutionRecord:
            tree = [record_from_row(row) for row in conn.execute(_TREE, (execution_id,))]
            root = next((r for r in tree if r.execution_id == execution_id), None)
            if root is None:
                raise DurableExecutionNotFoundError(f"No execution {execution_id} was found")
            check_retryable(root, tree)
            changed = reopen_tree(tree, execution_id, now_ms)
            try:
                conn.executemany(UPDATE, [record_to_params(r) for r in changed])
            except sqlite3.IntegrityError as exc:  # the transaction is rolled back
                raise unique_id_taken(execution_id, exc) from exc
            for record in changed:
                kinds.update(record_work(record))
            root.child_execution_ids = tuple(
                r[0] for r in conn.execute(_CHILD_IDS, (root.execution_id,))
            )
            return root

        return await self._write(body)

    # -- abilities.ExecutionPurge ------------------------------------------------------------

    async def purge_closed_trees(
        self,
        *,
        finished_before_ms: int,
        after_execution_id: str,
        scan_limit: int,
        max_trees: int,
        dry_run: bool = False,
    ) -> PurgeBatch:
        bound = execution_id_floor(finished_before_ms)

        def body(conn: sqlite3.Connection, kinds: set[WorkKind]) -> PurgeBatch:
            scanned = conn.execute(
                _SCAN, (after_execution_id, bound, finished_before_ms, scan_limit)
            ).fetchall()
            roots, next_after = roots_to_purge(scanned, scan_limit, max_trees)
            if not roots:
                return PurgeBatch(trees=0, executions=0, next_after=next_after)
            members: dict[str, list[str]] = {}
            blocked: set[str] = set()
            for root, member, final in conn.execute(_TREES, (json.dumps(roots),)):
                members.setdefault(root, []).append(member)
                if not final:
                    blocked.add(root)
            doomed = [m for root, ids in members.items() if root not in blocked for m in ids]
            if doomed and not dry_run:
                conn.execute(_DELETE, (json.dumps(doomed),))
            return PurgeBatch(
                trees=len(members) - len(blocked), executions=len(doomed), next_after=next_after
            )

        return await self._write(body)
