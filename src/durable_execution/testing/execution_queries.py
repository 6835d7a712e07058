"""Conformance of the :class:`~durable_execution.storage.abilities.ExecutionQueries` ability:
every filter of a listing agrees with the reference rules
(:func:`durable_execution.storage.inspection.matches`), pages follow one another without
repeat nor gap while executions are added, trees are read whole, counts are grouped."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, ClassVar

from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.abilities import ExecutionQueries, require
from durable_execution.storage.inspection import (
    ExecutionCount,
    ExecutionFilter,
    count_records,
    list_key,
    matches,
)
from durable_execution.storage.protocol import DurableStorage
from durable_execution.storage.records import ExecutionRecord, NewExecution
from durable_execution.testing.base import ConformanceBase
from durable_execution.testing.harness import (
    CHILD_TASK,
    COMPLETION_TASK,
    ERROR_1,
    PARENT_TASK,
    T0,
    TASK_A,
    TASK_B,
    Harness,
    child_of,
    new_execution,
    outcome_for,
)

__all__ = ["ExecutionQueriesConformance"]


def _queries(storage: DurableStorage) -> ExecutionQueries:
    return require(storage, ExecutionQueries, "run this conformance part")


def _root(execution_id: str, task_id: str, at_ms: int, **attributes: Any) -> NewExecution:
    new = new_execution(execution_id, task_id, start_at_ms=at_ms)
    return dataclasses.replace(new, attributes=json.dumps(attributes) if attributes else None)


async def _fill(h: Harness) -> None:
    """Roots of two tasks, finished or not, with attributes of every JSON type compared; a
    parent with two children."""
    await h.insert(_root("r1", TASK_A, T0 + 1, tenant="acme", n=1), now_ms=T0 + 1)
    (r1,) = await h.claim_ids("r1", now_ms=T0 + 1)
    await h.finish(r1, S.COMPLETED, output="1", now_ms=T0 + 10)
    await h.insert(_root("r2", TASK_B, T0 + 2, tenant="beta", flag=True), now_ms=T0 + 2)
    (r2,) = await h.claim_ids("r2", now_ms=T0 + 2)
    await h.finish(r2, S.FAILED, error=ERROR_1, now_ms=T0 + 20)
    await h.insert(_root("r3", TASK_A, T0 + 3, n="1"), now_ms=T0 + 3)
    await h.insert(new_execution("p", PARENT_TASK, start_at_ms=T0 + 4), now_ms=T0 + 4)
    (p,) = await h.claim_ids("p", now_ms=T0 + 4)
    await h.spawn(p, ["p.0", "p.1"], now_ms=T0 + 5)
    await h.insert(_root("r4", TASK_B, T0 + 6, flag=1), now_ms=T0 + 6)


_FILTERS: list[ExecutionFilter] = [
    ExecutionFilter(),
    ExecutionFilter(statuses=(S.FAILED,)),
    ExecutionFilter(statuses=(S.COMPLETED, S.READY)),
    ExecutionFilter(statuses=()),
    ExecutionFilter(task_ids=(TASK_A,)),
    ExecutionFilter(task_ids=(TASK_A, CHILD_TASK)),
    ExecutionFilter(root_only=True),
    ExecutionFilter(parent_execution_id="p"),
    ExecutionFilter(parent_execution_id="r1"),
    ExecutionFilter(created_after_ms=T0 + 3),
    ExecutionFilter(created_before_ms=T0 + 5),
    ExecutionFilter(created_after_ms=T0 + 2, created_before_ms=T0 + 5),
    ExecutionFilter(finished_after_ms=T0 + 15),
    ExecutionFilter(finished_before_ms=T0 + 15),
    ExecutionFilter(attributes={"tenant": "acme"}),
    ExecutionFilter(attributes={"tenant": "acme", "n": 1}),
    ExecutionFilter(attributes={"n": 1}),
    ExecutionFilter(attributes={"n": "1"}),
    ExecutionFilter(attributes={"flag": True}),
    ExecutionFilter(attributes={"flag": 1}),
    ExecutionFilter(attributes={"flag": False}),
    ExecutionFilter(attributes={"missing": "x"}),
    ExecutionFilter(statuses=(S.READY,), task_ids=(TASK_A, TASK_B), root_only=True),
    ExecutionFilter(statuses=(S.FAILED, S.CANCELLED), task_ids=(TASK_B,)),
    ExecutionFilter(id_from="p.1"),
    ExecutionFilter(id_before="r3"),
    ExecutionFilter(id_from="p.0", id_before="r2", created_after_ms=T0 + 3),
]


def _reference(h: Harness, where: ExecutionFilter) -> list[ExecutionRecord]:
    found = [record for record in h.latest.values() if matches(record, where)]
    return sorted(found, key=list_key, reverse=True)


def _ids(records: list[ExecutionRecord]) -> list[str]:
    return [record.execution_id for record in records]


class ExecutionQueriesConformance(ConformanceBase):
    """Listing, trees and counts: mix it into the test class of a backend that has the
    ability, beside :class:`~durable_execution.testing.StorageConformanceSuite`."""

    __test__ = False
    ability: ClassVar[type] = ExecutionQueries
    """The ability this part checks."""

    def test_each_filter_lists_what_the_reference_rules_select_newest_first(self) -> None:
        """Every filter, alone and combined, selects what ``matches`` selects, newest first,
        and each record reads as ``get_executions`` reads it (children's ids included). An
        attribute matches only with a value of the same JSON type."""

        async def body(h: Harness) -> None:
            await _fill(h)
            queries = _queries(h.storage)
            for where in _FILTERS:
                listed = await queries.list_executions(where, limit=100)
                expected = _reference(h, where)
                assert _ids(listed) == _ids(expected), where
                assert listed == await h.storage.get_executions(_ids(expected)), where
            by_attributes: list[tuple[str, str | int | bool, list[str]]] = [
                ("n", 1, ["r1"]),
                ("n", "1", ["r3"]),
                ("flag", True, ["r2"]),
                ("flag", 1, ["r4"]),
            ]
            for key, value, expected_ids in by_attributes:
                where = ExecutionFilter(attributes={key: value})
                assert _ids(await queries.list_executions(where, limit=100)) == expected_ids
            everything = await queries.list_executions(ExecutionFilter(), limit=100)
            assert _ids(everything) == ["r4", "r3", "r2", "r1", "p.1", "p.0", "p"]
            assert _ids(await queries.list_executions(ExecutionFilter(), limit=2)) == [
                "r4",
                "r3",
            ]

        self.run_scenario(body)

    def test_pages_follow_one_another_without_repeat_or_gap_while_executions_are_added(
        self,
    ) -> None:
        """Paging by id, newest (greatest) first; executions added between two pages (with
        greater ids, as new ids are) do not appear in the later pages; the page after the
        last is empty."""

        async def body(h: Harness) -> None:
            queries = _queries(h.storage)
            for i in range(30):
                await h.insert(new_execution(f"q{i:02d}", TASK_A), now_ms=T0 + i // 3)
            expected = _ids(_reference(h, ExecutionFilter()))
            assert expected[:4] == ["q29", "q28", "q27", "q26"]
            seen: list[str] = []
            after = None
            for page in range(10):
                records = await queries.list_executions(ExecutionFilter(), limit=7, after=after)
                if not records:
                    break
                assert len(records) <= 7
                seen.extend(_ids(records))
                after = list_key(records[-1])
                await h.insert(new_execution(f"r{page}", TASK_B), now_ms=T0 + 100 + page)
            assert seen == expected
            assert page == 5  # 7 + 7 + 7 + 7 + 2, then an empty page
            assert await queries.list_executions(ExecutionFilter(), limit=7, after=after) == []
            first = await queries.list_executions(ExecutionFilter(task_ids=(TASK_B,)), limit=2)
            assert _ids(first) == ["r4", "r3"]

        self.run_scenario(body)

    def test_a_tree_is_read_whole_from_any_of_its_executions(self) -> None:
        """The tree of a root holds its children, their children, completion tasks and the
        successors of a sequence (the given execution first); the tree of an inner execution
        holds what is below it; another tree is left out; an unknown id reads nothing."""

        async def body(h: Harness) -> None:
            root = await h.start_parent("t", ["t.0", "t.1"])
            t0, t1 = await h.claim_ids("t.0", "t.1")
            await h.spawn(t0, ["t.0.0", "t.0.1"])
            completion = child_of(t1, "t.1.c", 0, task_id=COMPLETION_TASK, is_completion=True)
            waiting = outcome_for(
                t1, S.WAITING_FOR_ON_RUN_AND_CHILDREN_COMPLETE, children=[completion]
            )
            assert await h.record(waiting) == [True]
            (t00,) = await h.claim_ids("t.0.0")
            successor = child_of(h["t.0"], "t.0.2", 2)
            assert await h.record(
                outcome_for(t00, S.COMPLETED, output="0", successor=successor)
            ) == [True]
            await h.start_parent("u", ["u.0"])
            queries = _queries(h.storage)

            tree = await queries.get_execution_tree(root.execution_id)
            assert tree[0].execution_id == "t"
            every = ["t", "t.0", "t.1", "t.0.0", "t.0.1", "t.0.2", "t.1.c"]
            assert sorted(_ids(tree)) == sorted(every)
            assert sorted(tree, key=lambda r: r.execution_id) == await h.storage.get_executions(
                sorted(every)
            )
            by_id = {record.execution_id: record for record in tree}
            assert by_id["t.0"].child_execution_ids == ("t.0.0", "t.0.1", "t.0.2")
            assert by_id["t.1"].completion_execution_id == "t.1.c"
            inner = await queries.get_execution_tree("t.0")
            assert inner[0].execution_id == "t.0"
            assert sorted(_ids(inner)) == ["t.0", "t.0.0", "t.0.1", "t.0.2"]
            leaf = await queries.get_execution_tree("t.1.c")
            assert _ids(leaf) == ["t.1.c"]
            assert await queries.get_execution_tree("nope") == []

        self.run_scenario(body)

    def test_counts_are_grouped_by_task_and_status(self) -> None:
        """Counts by task and status, by one of them, or in all, with filters; sorted by task
        then status; a total of nothing is 0, a grouping of nothing is empty."""

        async def body(h: Harness) -> None:
            queries = _queries(h.storage)
            assert await queries.count_executions(ExecutionFilter(), by=()) == [ExecutionCount(0)]
            assert await queries.count_executions(ExecutionFilter(), by=("status",)) == []
            await _fill(h)
            records = list(h.latest.values())
            both = await queries.count_executions(ExecutionFilter(), by=("task_id", "status"))
            assert both == count_records(records, ("task_id", "status"))
            assert both == [
                ExecutionCount(2, CHILD_TASK, S.READY),
                ExecutionCount(1, PARENT_TASK, S.WAITING_FOR_CHILDREN),
                ExecutionCount(1, TASK_A, S.COMPLETED),
                ExecutionCount(1, TASK_A, S.READY),
                ExecutionCount(1, TASK_B, S.FAILED),
                ExecutionCount(1, TASK_B, S.READY),
            ]
            by_status = await queries.count_executions(ExecutionFilter(), by=("status",))
            assert by_status == [
                ExecutionCount(1, status=S.COMPLETED),
                ExecutionCount(1, status=S.FAILED),
                ExecutionCount(4, status=S.READY),
                ExecutionCount(1, status=S.WAITING_FOR_CHILDREN),
            ]
            for where in _FILTERS:
                for by in ((), ("task_id",), ("task_id", "status")):
                    counted = await queries.count_executions(where, by=by)
                    assert counted == count_records(_reference(h, where), by), (where, by)

        self.run_scenario(body)
