"""The executor's queries (list_executions, get_execution_tree, count_executions) on every
backend, from executors that were never started; their arguments and cursors checked."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest

from durable_execution import (
    ChildTask,
    DurableExecutionNotFoundError,
    DurableExecutor,
    DurableTaskExecutionStatus,
    ExecutionCount,
    ExecutionTreeNode,
    TaskContext,
    UnsupportedByStorageError,
)
from durable_execution.storage.memory import InMemoryStorage
from durable_execution.testing import DelegatingStorage

S = DurableTaskExecutionStatus
MakeExecutor = Callable[..., DurableExecutor]
UTC = dt.UTC


def _ids(node: ExecutionTreeNode) -> Any:
    """The tree as nested ``(task_id, status, [children])``."""
    execution = node.execution
    return (execution.task_id, execution.status.value, [_ids(child) for child in node.children])


def define(executor: DurableExecutor) -> dict[str, Any]:
    """A parent with a failing child and a completing one, then a completion task."""

    def fail(ctx: TaskContext, value: Any) -> Any:
        raise RuntimeError(f"no {value}")

    leaf = executor.task(id="leaf", timeout_ms=5_000, run=lambda ctx, i: i * 2)
    bad = executor.task(id="bad", timeout_ms=5_000, run=fail)
    parent = executor.parent_task(
        id="order",
        timeout_ms=5_000,
        children_policy="all_settled",
        run_parent=lambda ctx, i: {
            "output": i,
            "children": [ChildTask(leaf, i), ChildTask(bad, i), ChildTask(leaf, i + 1)],
        },
        on_run_and_children_complete={
            "id": "order_done",
            "timeout_ms": 5_000,
            "run": lambda ctx, v: len(v.children),
        },
    )
    return {"leaf": leaf, "bad": bad, "order": parent}


async def test_an_idle_executor_lists_inspects_and_counts_what_another_ran(
    make_executor: MakeExecutor,
) -> None:
    worker = make_executor()
    tasks = define(worker)
    await worker.start()
    handles = [
        await worker.enqueue_task(tasks["order"], i, attributes={"tenant": "acme" if i else "b"})
        for i in range(3)
    ]
    for handle in handles:
        assert (await handle.wait_and_get_execution(timeout=20)).status is S.COMPLETED
    await worker.shutdown()

    observer = make_executor()  # never started, knows no task
    page = await observer.list_executions(root_only=True, limit=10)
    roots = [await observer.get_execution(h.execution_id) for h in handles]
    assert list(page.items) == sorted(roots, key=lambda e: e.execution_id, reverse=True)
    assert page.next_cursor is None
    acme = await observer.list_executions(attributes={"tenant": "acme"}, root_only=True)
    assert len((await observer.list_executions(attributes={"tenant": "acme"})).items) == 10
    assert sorted(e.execution_id for e in acme.items) == sorted(h.execution_id for h in handles[1:])
    failed = await observer.list_executions(status="failed", task_id=["bad", "leaf"])
    assert [e.task_id for e in failed.items] == ["bad"] * 3
    assert all(e.error is not None and "no" in e.error.message for e in failed.items)
    children = await observer.list_executions(parent_execution_id=handles[0].execution_id)
    assert sorted(e.task_id for e in children.items) == ["bad", "leaf", "leaf", "order_done"]

    tree = await observer.get_execution_tree(handles[1].execution_id)
    assert _ids(tree) == (
        "order",
        "completed",
        [
            ("leaf", "completed", []),
            ("bad", "failed", []),
            ("leaf", "completed", []),
            ("order_done", "completed", []),
        ],
    )
    assert [child.execution.output for child in tree.children] == [2, None, 4, 3]
    assert [n.execution.task_id for n in tree.walk()][:2] == ["order", "leaf"]
    with pytest.raises(DurableExecutionNotFoundError):
        await observer.get_execution_tree("no-such-execution")

    assert await observer.count_executions() == [
        ExecutionCount(3, "bad", S.FAILED),
        ExecutionCount(6, "leaf", S.COMPLETED),
        ExecutionCount(3, "order", S.COMPLETED),
        ExecutionCount(3, "order_done", S.COMPLETED),
    ]
    assert await observer.count_executions(by=("status",), root_only=True) == [
        ExecutionCount(3, status=S.COMPLETED)
    ]
    assert await observer.count_executions(by=()) == [ExecutionCount(15)]


async def _next_millisecond() -> dt.datetime:
    """A time after everything done so far, once the clock has passed it (a few ms)."""
    moment = dt.datetime.now(UTC) + dt.timedelta(milliseconds=1)
    while dt.datetime.now(UTC) < moment + dt.timedelta(milliseconds=1):
        await asyncio.sleep(0.001)
    return moment


async def test_pages_carry_on_from_their_cursor_newest_first(make_executor: MakeExecutor) -> None:
    executor = make_executor()
    task = executor.task(id="t", timeout_ms=1_000, run=lambda ctx, i: i)
    ids = [(await executor.enqueue_task(task, i)).execution_id for i in range(7)]
    before = await _next_millisecond()
    seen: list[str] = []
    cursor = None
    while True:
        page = await executor.list_executions(task_id="t", limit=3, cursor=cursor)
        seen.extend(e.execution_id for e in page.items)
        await executor.enqueue_task(task, 100)  # newer: on a new first page only
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    # Each execution listed once; all the first ones. (One added in the millisecond of a
    # page's last execution, with a smaller random id, may come in a later page.)
    assert len(seen) == len(set(seen))
    assert set(ids) <= set(seen)
    listed = [e.execution_id for e in (await executor.list_executions(limit=100)).items]
    assert listed == sorted(listed, reverse=True)  # ids begin with their creation time
    with pytest.raises(ValueError, match="cursor"):  # a cursor of another listing
        await executor.list_executions(task_id="other", limit=3, cursor=cursor)
    after_first = await executor.list_executions(created_after=before, limit=100)
    assert after_first.items
    assert not set(ids) & {e.execution_id for e in after_first.items}
    up_to = await executor.list_executions(created_before=before, limit=100)
    assert sorted(e.execution_id for e in up_to.items) == sorted(ids)
    finished = await executor.list_executions(finished_before=before, limit=100)
    assert finished.items == ()  # nothing ran


@pytest.mark.parametrize("backend", ["memory"], indirect=True)
@pytest.mark.parametrize(
    "cursor",
    ["", "not base64 !", base64.urlsafe_b64encode(b"[1, 2]").decode(), "e30", 5],
    ids=["empty", "garbage", "short", "object", "not_a_string"],
)
async def test_a_tampered_cursor_is_refused(executor: DurableExecutor, cursor: Any) -> None:
    with pytest.raises(ValueError, match="Invalid cursor"):
        await executor.list_executions(cursor=cursor)


@pytest.mark.parametrize("backend", ["memory"], indirect=True)
async def test_an_edited_cursor_is_refused(executor: DurableExecutor) -> None:
    task = executor.task(id="t", timeout_ms=1_000, run=lambda ctx, i: i)
    for i in range(3):
        await executor.enqueue_task(task, i)
    page = await executor.list_executions(limit=1)
    assert page.next_cursor is not None
    text = base64.urlsafe_b64decode(page.next_cursor + "==").decode()
    data = json.loads(text)
    data[1] += "0"  # a later position, the digest kept
    edited = base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    with pytest.raises(ValueError, match="Invalid cursor"):
        await executor.list_executions(limit=1, cursor=edited)
    assert len((await executor.list_executions(limit=1, cursor=page.next_cursor)).items) == 1


_NAIVE = dt.datetime(2026, 1, 1)


@pytest.mark.parametrize("backend", ["memory"], indirect=True)
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"status": "sleepy"}, "Invalid status 'sleepy'"),
        ({"status": ["failed", 3]}, "Invalid status 3"),
        ({"status": 3}, "Invalid status=3"),
        ({"task_id": ""}, "Invalid task id"),
        ({"task_id": ["a", None]}, "Invalid task id None"),
        ({"root_only": 1}, "root_only"),
        ({"root_only": True, "parent_execution_id": "p"}, "exclude each other"),
        ({"parent_execution_id": ""}, "parent_execution_id"),
        ({"created_after": _NAIVE}, "timezone-aware"),
        ({"finished_before": "2026-01-01"}, "timezone-aware"),
        (
            {
                "created_after": _NAIVE.replace(tzinfo=UTC),
                "created_before": _NAIVE.replace(tzinfo=UTC),
            },
            "earlier than",
        ),
        ({"attributes": ["tenant"]}, "expected a mapping"),
        ({"attributes": {"x": 1.5}}, "attribute 'x'"),
        ({"attributes": {"": "a"}}, "attribute name"),
        ({"limit": 0}, "limit=0"),
        ({"limit": 1001}, "limit=1001"),
        ({"limit": True}, "limit=True"),
    ],
)
async def test_invalid_arguments_are_refused(
    executor: DurableExecutor, arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await executor.list_executions(**arguments)


@pytest.mark.parametrize("backend", ["memory"], indirect=True)
async def test_statuses_and_counts_take_every_spelling(executor: DurableExecutor) -> None:
    task = executor.task(id="t", timeout_ms=1_000, run=lambda ctx, i: i)
    await executor.enqueue_task(task, 1)
    for status in ("ready", S.READY, ["ready", S.READY], {S.READY}):
        assert len((await executor.list_executions(status=status)).items) == 1
    assert (await executor.list_executions(status=[])).items == ()
    assert await executor.count_executions(by=["status", "task_id"]) == [
        ExecutionCount(1, "t", S.READY)
    ]
    for by, message in (("when", "Invalid by"), (["status", "status"], "repeated")):
        with pytest.raises(ValueError, match=message):
            await executor.count_executions(by=by)
    with pytest.raises(ValueError, match="root_execution_id"):
        await executor.get_execution_tree("")


async def test_a_storage_without_the_ability_says_which_is_missing(
    make_executor: MakeExecutor,
) -> None:
    executor = make_executor(DelegatingStorage(InMemoryStorage()))
    with pytest.raises(
        UnsupportedByStorageError, match=r"cannot list executions.*ExecutionQueries"
    ):
        await executor.list_executions()
    with pytest.raises(UnsupportedByStorageError, match="read an execution tree"):
        await executor.get_execution_tree("x")
    with pytest.raises(UnsupportedByStorageError, match="count executions"):
        await executor.count_executions()


def test_time_ranges_narrow_the_id_range_by_the_ids_time_prefix() -> None:
    """Ids begin with the milliseconds they were drawn at, before their row is created and
    long before it finishes: a creation range keeps the ids drawn from an hour before its start
    to a second past its end, a finished_before the ids drawn up to a second past it; a
    finished_after bounds no id."""
    from durable_execution.executor.query_args import execution_filter
    from durable_execution.ids import execution_id_floor, new_execution_id

    start = dt.datetime(2026, 6, 1, tzinfo=UTC)
    end = start + dt.timedelta(hours=2)
    ms = int(start.timestamp() * 1000)
    where = execution_filter(created_after=start, created_before=end)
    assert where.id_from == execution_id_floor(ms - 3_600_000)
    assert where.id_before == execution_id_floor(ms + 7_200_000 + 1_000)
    assert where.id_from < f"te_{ms:012x}{'0' * 20}" < where.id_before
    finished = execution_filter(finished_after=start, finished_before=end)
    assert (finished.id_from, finished.id_before) == (None, where.id_before)
    both = execution_filter(created_before=end, finished_before=start)
    assert both.id_before == execution_id_floor(ms + 1_000)
    assert execution_filter().id_from is None
    assert execution_id_floor(ms) < new_execution_id()  # now is after 2026-06-01
