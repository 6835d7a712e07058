"""The executor's queries: :meth:`InspectionMethods.list_executions`,
:meth:`~InspectionMethods.get_execution_tree` and :meth:`~InspectionMethods.count_executions`,
on a storage with the :class:`~durable_execution.storage.abilities.ExecutionQueries` ability.

They only read the storage, so they work from an executor that was never started (an
operator's script, a web view) as well as from a running one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from durable_execution.errors import DurableExecutionNotFoundError
from durable_execution.execution import DurableTaskExecution
from durable_execution.executor.query_args import (
    StatusArg,
    check_count_keys,
    check_page_size,
    decode_cursor,
    encode_cursor,
    execution_filter,
)
from durable_execution.storage.abilities import ExecutionQueries, require
from durable_execution.storage.inspection import AttributeValue, ExecutionCount, list_key
from durable_execution.storage.protocol import DurableStorage
from durable_execution.storage.records import ExecutionRecord

if TYPE_CHECKING:
    from durable_execution.executor.options import ExecutorOptions

__all__ = ["ExecutionPage", "ExecutionTreeNode", "InspectionMethods", "build_tree"]


@dataclass(frozen=True, slots=True)
class ExecutionPage:
    """One page of :meth:`InspectionMethods.list_executions`: ``items``, newest first, and
    ``next_cursor``, to pass as ``cursor=`` (with the same filters) for the next page;
    ``None`` when this page is the last."""

    items: tuple[DurableTaskExecution[Any], ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class ExecutionTreeNode:
    """One execution of a tree (:meth:`InspectionMethods.get_execution_tree`) and the nodes
    below it: its children in the order the parent returned them (successors of a sequence
    included), then its completion task, if any."""

    execution: DurableTaskExecution[Any]
    children: tuple[ExecutionTreeNode, ...]

    def walk(self) -> Iterable[ExecutionTreeNode]:
        """This node and every node below it, depth first, in order."""
        yield self
        for child in self.children:
            yield from child.walk()


def build_tree(records: Sequence[ExecutionRecord], decode: Any) -> ExecutionTreeNode:
    """The tree of ``records`` (the root first, as the storage returns them), each record
    turned into an execution by ``decode``."""
    by_parent: dict[str, list[ExecutionRecord]] = {}
    for record in records[1:]:
        if record.parent_execution_id is not None:
            by_parent.setdefault(record.parent_execution_id, []).append(record)

    def node(record: ExecutionRecord) -> ExecutionTreeNode:
        below = by_parent.get(record.execution_id, [])
        order = {eid: i for i, eid in enumerate(record.child_execution_ids)}
        if record.completion_execution_id is not None:
            order[record.completion_execution_id] = len(order)
        below.sort(key=lambda r: (order.get(r.execution_id, len(order)), r.index_in_parent))
        return ExecutionTreeNode(decode(record), tuple(node(child) for child in below))

    return node(records[0])


_LIST = "list executions"
_TREE = "read an execution tree"
_COUNT = "count executions"


class InspectionMethods:
    """What :class:`~durable_execution.DurableExecutor` offers to look at executions."""

    storage: DurableStorage
    options: ExecutorOptions

    def _ensure_initialized(self) -> Awaitable[None]:
        raise NotImplementedError  # the executor's

    def _decode(self, record: ExecutionRecord) -> DurableTaskExecution[Any]:
        return DurableTaskExecution.from_record(record, self.options.serializer)

    async def list_executions(
        self,
        *,
        status: StatusArg | Collection[StatusArg] | None = None,
        task_id: str | Collection[str] | None = None,
        root_only: bool = False,
        parent_execution_id: str | None = None,
        created_after: dt.datetime | None = None,
        created_before: dt.datetime | None = None,
        finished_after: dt.datetime | None = None,
        finished_before: dt.datetime | None = None,
        attributes: Mapping[str, AttributeValue] | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> ExecutionPage:
        """A page of the executions that match every filter given, newest first (by creation
        time, then id), as :meth:`~durable_execution.DurableExecutor.get_execution` returns
        them.

        ``status``/``task_id``: one, or any of several (statuses as the enum or its value).
        ``root_only``: executions without parent; ``parent_execution_id``: the children (and
        completion task) of one execution. ``created_after <= created_at < created_before``,
        and the same for ``finished_*`` (which leaves out unfinished executions); the times
        are timezone-aware datetimes. ``attributes``: each key present with an equal value (a
        string, an integer or a boolean). ``limit``: 1 to 1,000 executions per page.

        ``cursor``: the ``next_cursor`` of the previous page, with the same filters. Pages
        never repeat an execution nor skip one that existed when the first page was read,
        also while executions are added: those appear on a new first page (except one
        created in the very millisecond where a page ended, which may sort after it).

        Raises ``ValueError`` for an invalid argument (an edited cursor, or one of another
        listing, included), and :class:`~durable_execution.errors.UnsupportedByStorageError`
        when the storage lacks the
        :class:`~durable_execution.storage.abilities.ExecutionQueries` ability.
        """
        where = execution_filter(
            status=status,
            task_id=task_id,
            root_only=root_only,
            parent_execution_id=parent_execution_id,
            created_after=created_after,
            created_before=created_before,
            finished_after=finished_after,
            finished_before=finished_before,
            attributes=attributes,
        )
        size = check_page_size(limit)
        after = decode_cursor(where, cursor)
        queries = require(self.storage, ExecutionQueries, _LIST)
        await self._ensure_initialized()
        records = await queries.list_executions(where, limit=size + 1, after=after)
        page = records[:size]
        next_cursor = None
        if len(records) > size:
            next_cursor = encode_cursor(where, list_key(page[-1]))
        return ExecutionPage(tuple(self._decode(r) for r in page), next_cursor)

    async def get_execution_tree(self, root_execution_id: str) -> ExecutionTreeNode:
        """The execution ``root_execution_id`` (usually a root, but any execution will do)
        with everything below it, as nested :class:`ExecutionTreeNode` values: statuses,
        outputs and errors of each, read in one storage query (not one per execution).

        Raises :class:`~durable_execution.errors.DurableExecutionNotFoundError` when no
        execution has this id, and
        :class:`~durable_execution.errors.UnsupportedByStorageError` when the storage lacks
        the :class:`~durable_execution.storage.abilities.ExecutionQueries` ability.
        """
        if not isinstance(root_execution_id, str) or not root_execution_id:
            raise ValueError(
                f"Invalid root_execution_id={root_execution_id!r}: expected a non-empty string"
            )
        queries = require(self.storage, ExecutionQueries, _TREE)
        await self._ensure_initialized()
        records = await queries.get_execution_tree(root_execution_id)
        if not records:
            raise DurableExecutionNotFoundError(f"No execution {root_execution_id} was found")
        return build_tree(records, self._decode)

    async def count_executions(
        self,
        *,
        by: Sequence[str] = ("task_id", "status"),
        status: StatusArg | Collection[StatusArg] | None = None,
        task_id: str | Collection[str] | None = None,
        root_only: bool = False,
        created_after: dt.datetime | None = None,
        created_before: dt.datetime | None = None,
        finished_after: dt.datetime | None = None,
        finished_before: dt.datetime | None = None,
    ) -> list[ExecutionCount]:
        """How many executions there are, grouped by ``by`` (``"task_id"`` and/or
        ``"status"``; ``()`` for a single total): one
        :class:`~durable_execution.storage.inspection.ExecutionCount` per group that has
        executions, sorted by task id then status; the fields not grouped by are ``None``.
        The filters are those of :meth:`list_executions`.

        It reads every execution counted (through an index): meant for an operator's view,
        not for a hot path. Raises as :meth:`list_executions` does.
        """
        keys = check_count_keys(by)
        where = execution_filter(
            status=status,
            task_id=task_id,
            root_only=root_only,
            created_after=created_after,
            created_before=created_before,
            finished_after=finished_after,
            finished_before=finished_before,
        )
        queries = require(self.storage, ExecutionQueries, _COUNT)
        await self._ensure_initialized()
        return await queries.count_executions(where, by=keys)
