"""Conformance of the :class:`~durable_execution.storage.abilities.WorkerRegistry` ability:
workers registered, kept alive by heartbeats, listed, deregistered and forgotten; tasks and
ready executions that no live worker serves."""

from __future__ import annotations

from typing import ClassVar

from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.abilities import WorkerRegistry, require
from durable_execution.storage.protocol import DurableStorage
from durable_execution.storage.workers import UnservedTask, WorkerInfo
from durable_execution.testing.base import ConformanceBase
from durable_execution.testing.harness import (
    CHILD_TASK,
    EXECUTOR_1,
    EXECUTOR_2,
    PARENT_TASK,
    T0,
    TASK_A,
    TASK_B,
    Harness,
    new_execution,
)

__all__ = ["WorkerRegistryConformance"]

ALIVE_MS = 30_000
"""The liveness window the scenarios use."""


def worker(
    executor_id: str = EXECUTOR_1,
    *task_ids: str,
    started_at_ms: int = T0,
    heartbeat_at_ms: int | None = None,
    host: str = "host-1",
    pid: int = 4242,
) -> WorkerInfo:
    """A worker to register; its heartbeat defaults to its start."""
    return WorkerInfo(
        executor_id=executor_id,
        host=host,
        pid=pid,
        task_ids=task_ids,
        started_at_ms=started_at_ms,
        heartbeat_at_ms=started_at_ms if heartbeat_at_ms is None else heartbeat_at_ms,
    )


def _registry(storage: DurableStorage) -> WorkerRegistry:
    return require(storage, WorkerRegistry, "run this conformance part")


async def _live(storage: DurableStorage, now_ms: int) -> list[WorkerInfo]:
    return await _registry(storage).list_workers(now_ms=now_ms, alive_within_ms=ALIVE_MS)


async def _unserved(storage: DurableStorage, now_ms: int, limit: int = 100) -> list[UnservedTask]:
    return await _registry(storage).find_unserved_ready(
        now_ms=now_ms, alive_within_ms=ALIVE_MS, limit=limit
    )


class WorkerRegistryConformance(ConformanceBase):
    """The worker registry: mix it into the test class of a backend that has the ability,
    beside :class:`~durable_execution.testing.StorageConformanceSuite`; it needs nothing more.
    """

    __test__ = False
    ability: ClassVar[type] = WorkerRegistry
    """The ability this part checks."""

    def test_registered_workers_are_listed_as_registered(self) -> None:
        """Every field reads back (task ids sorted, without repeats), from another storage
        object too; the earliest started first, then by executor id; a second registration
        of one executor replaces its row."""

        async def body(h: Harness) -> None:
            registry = _registry(h.storage)
            first = worker("dx-b", TASK_B, TASK_A, TASK_A, started_at_ms=T0 + 5, pid=2**31 + 1)
            await registry.register_worker(first)
            await registry.register_worker(worker("dx-c", started_at_ms=T0 + 1, host="h ✓"))
            await registry.register_worker(worker("dx-a", CHILD_TASK, started_at_ms=T0 + 5))
            expected = [
                worker("dx-c", started_at_ms=T0 + 1, host="h ✓"),
                worker("dx-a", CHILD_TASK, started_at_ms=T0 + 5),
                worker("dx-b", TASK_A, TASK_B, started_at_ms=T0 + 5, pid=2**31 + 1),
            ]
            assert await _live(h.storage, T0 + 10) == expected
            assert await _live(await h.connect(), T0 + 10) == expected
            again = worker("dx-b", PARENT_TASK, started_at_ms=T0 + 7, host="host-2", pid=7)
            await registry.register_worker(again)
            assert await _live(h.storage, T0 + 10) == [expected[0], expected[1], again]

        self.run_scenario(body)

    def test_heartbeats_keep_a_worker_alive_and_may_change_its_tasks(self) -> None:
        """A worker is listed while its heartbeat is at most the window old (the boundary
        included); a heartbeat moves it, and sets the task ids when given; a heartbeat of an
        unknown worker changes nothing and says so."""

        async def body(h: Harness) -> None:
            registry = _registry(h.storage)
            await registry.register_worker(worker(EXECUTOR_1, TASK_A))
            assert ids(await _live(h.storage, T0 + ALIVE_MS)) == [EXECUTOR_1]
            assert await _live(h.storage, T0 + ALIVE_MS + 1) == []
            assert await registry.heartbeat_worker(EXECUTOR_1, now_ms=T0 + 20_000)
            (alive,) = await _live(h.storage, T0 + 20_000 + ALIVE_MS)
            assert alive == worker(EXECUTOR_1, TASK_A, heartbeat_at_ms=T0 + 20_000)
            assert await registry.heartbeat_worker(
                EXECUTOR_1, now_ms=T0 + 21_000, task_ids=[TASK_B, PARENT_TASK, TASK_B]
            )
            (alive,) = await _live(h.storage, T0 + 21_000)
            assert alive.task_ids == (PARENT_TASK, TASK_B)
            assert alive.heartbeat_at_ms == T0 + 21_000
            assert await registry.heartbeat_worker(EXECUTOR_1, now_ms=T0 + 22_000, task_ids=[])
            (alive,) = await _live(h.storage, T0 + 22_000)
            assert alive.task_ids == ()
            assert not await registry.heartbeat_worker(EXECUTOR_2, now_ms=T0 + 22_000)
            assert ids(await _live(h.storage, T0 + 22_000)) == [EXECUTOR_1]

        self.run_scenario(body)

    def test_deregistered_and_forgotten_workers_are_gone(self) -> None:
        """Deregistering deletes the row (a second time does nothing); forgetting deletes
        only the workers dead for longer than asked, and counts them; a forgotten worker's
        heartbeat then says it has no row."""

        async def body(h: Harness) -> None:
            registry = _registry(h.storage)
            await registry.register_worker(worker(EXECUTOR_1, TASK_A))
            await registry.register_worker(worker(EXECUTOR_2, TASK_B, started_at_ms=T0 + 1))
            await registry.register_worker(worker("dx-young", TASK_B, started_at_ms=T0 + 500))
            await registry.deregister_worker(EXECUTOR_1)
            await registry.deregister_worker(EXECUTOR_1)
            assert ids(await _live(h.storage, T0 + 10)) == [EXECUTOR_2, "dx-young"]
            assert await registry.forget_dead_workers(now_ms=T0 + 1_000, dead_for_ms=999) == 0
            assert await registry.forget_dead_workers(now_ms=T0 + 1_000, dead_for_ms=998) == 1
            assert not await registry.heartbeat_worker(EXECUTOR_2, now_ms=T0 + 1_000)
            assert ids(await _live(h.storage, T0 + 1_000)) == ["dx-young"]

        self.run_scenario(body)

    def test_unserved_task_ids_are_those_no_live_worker_registered(self) -> None:
        """A task is served while one live worker registered it; a dead worker serves
        nothing."""

        async def body(h: Harness) -> None:
            registry = _registry(h.storage)
            await registry.register_worker(worker(EXECUTOR_1, TASK_A, CHILD_TASK))
            await registry.register_worker(
                worker(EXECUTOR_2, TASK_B, CHILD_TASK, started_at_ms=T0 + 10_000)
            )
            every = [TASK_A, TASK_B, CHILD_TASK, PARENT_TASK]

            async def unserved(now_ms: int) -> set[str]:
                return await registry.unserved_task_ids(
                    every, now_ms=now_ms, alive_within_ms=ALIVE_MS
                )

            assert await unserved(T0 + 10_000) == {PARENT_TASK}
            assert await unserved(T0 + ALIVE_MS + 1) == {TASK_A, PARENT_TASK}
            assert await unserved(T0 + ALIVE_MS + 10_001) == set(every)
            assert await registry.unserved_task_ids([], now_ms=T0, alive_within_ms=ALIVE_MS) == (
                set()
            )

        self.run_scenario(body)

    def test_ready_executions_of_unserved_tasks_are_found_per_task(self) -> None:
        """One entry per unserved task with ready executions (due or delayed), by task id:
        how many, and the oldest by creation time then id; running and finished executions,
        and those of served tasks, are not counted; ``limit`` bounds the entries."""

        async def body(h: Harness) -> None:
            await _registry(h.storage).register_worker(worker(EXECUTOR_1, TASK_A))
            await h.insert(new_execution("b-0", TASK_B), new_execution("p-0", PARENT_TASK))
            (b0, p0) = await h.claim_ids("b-0", "p-0")
            await h.finish(p0, S.COMPLETED, output="done")
            await h.insert(new_execution("a-1"), new_execution("a-2"))
            await h.insert(new_execution("b-3", TASK_B), now_ms=T0 + 3)
            await h.insert(new_execution("b-2", TASK_B, start_at_ms=T0 + 10**9), now_ms=T0 + 2)
            await h.insert(new_execution("b-1", TASK_B, priority=5), now_ms=T0 + 2)
            await h.insert(new_execution("p-1", PARENT_TASK), now_ms=T0 + 9)
            assert await _unserved(h.storage, T0 + 10) == [
                UnservedTask(PARENT_TASK, 1, "p-1", T0 + 9),
                UnservedTask(TASK_B, 3, "b-1", T0 + 2),
            ]
            assert await _unserved(h.storage, T0 + 10, limit=1) == [
                UnservedTask(PARENT_TASK, 1, "p-1", T0 + 9)
            ]
            later = T0 + ALIVE_MS + 1  # the worker died: its task is unserved too
            assert [u.task_id for u in await _unserved(h.storage, later)] == [
                PARENT_TASK,
                TASK_A,
                TASK_B,
            ]
            assert b0.status is S.RUNNING

        self.run_scenario(body)

    def test_nothing_is_unserved_when_every_ready_task_is_served(self) -> None:
        """No ready execution, or only ones of served tasks: an empty list."""

        async def body(h: Harness) -> None:
            registry = _registry(h.storage)
            assert await _unserved(h.storage, T0) == []
            await h.insert(new_execution("a-1"), new_execution("b-1", TASK_B))
            await registry.register_worker(worker(EXECUTOR_1, TASK_A))
            await registry.register_worker(worker(EXECUTOR_2, TASK_B))
            assert await _unserved(h.storage, T0 + 1) == []

        self.run_scenario(body)


def ids(workers: list[WorkerInfo]) -> list[str]:
    """The executor ids of ``workers``, in order."""
    return [w.executor_id for w in workers]
