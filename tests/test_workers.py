"""The worker registry seen from executors: registered at start, listed, kept up to date,
removed at shutdown, aged out when dead; work that no live executor can run is reported."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from typing import Any

import pytest

from durable_execution import (
    ChildTask,
    DurableExecutor,
    DurableStorageError,
    DurableTaskExecutionStatus,
    UnsupportedByStorageError,
    WorkerInfo,
)
from durable_execution.executor.presence import RegistrySettings, WorkerPresence
from durable_execution.storage.abilities import WorkerRegistry, require
from durable_execution.storage.memory import InMemoryStorage
from durable_execution.storage.protocol import DurableStorage
from durable_execution.testing import DelegatingStorage

from .conftest import StorageFactory
from .helpers import wait_until

S = DurableTaskExecutionStatus
MakeExecutor = Callable[..., DurableExecutor]
ALIVE_MS = RegistrySettings().alive_within_ms


def presence(executor: DurableExecutor) -> WorkerPresence:
    assert executor._presence is not None, "the executor is not started"
    return executor._presence


def warnings_about(caplog: pytest.LogCaptureFixture, task_id: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and f"registered task {task_id!r}" in r.getMessage()
    ]


def identity(ctx: Any, value: Any) -> Any:
    return value


async def test_started_executors_are_listed_until_they_shut_down(
    make_executor: MakeExecutor, storage_factory: StorageFactory
) -> None:
    first = make_executor(await storage_factory())
    first.task(id="a", timeout_ms=1_000, run=identity)
    first.task(id="b", timeout_ms=1_000, run=identity)
    second = make_executor(await storage_factory())
    second.task(id="c", timeout_ms=1_000, run=identity)
    observer = make_executor(await storage_factory())  # never started: lists, is not listed
    assert await observer.list_workers() == []
    await first.start()
    await second.start()
    workers = await observer.list_workers()
    assert workers == sorted(workers, key=lambda w: (w.started_at_ms, w.executor_id))
    tasks = {w.executor_id: w.task_ids for w in workers}
    assert tasks == {first.executor_id: ("a", "b"), second.executor_id: ("c",)}
    for worker in workers:
        assert (worker.host, worker.pid) == (socket.gethostname(), os.getpid())
        assert worker.heartbeat_at_ms >= worker.started_at_ms
        assert worker.started_at.timestamp() * 1000 == pytest.approx(worker.started_at_ms)
    await first.shutdown()
    assert [w.executor_id for w in await observer.list_workers()] == [second.executor_id]
    first._clock = lambda: second._clock() + 1_000  # started again, later: listed after
    await first.start()
    assert [w.executor_id for w in await observer.list_workers()] == [
        second.executor_id,
        first.executor_id,
    ]


async def test_tasks_defined_after_start_reach_the_registry_at_once(
    make_executor: MakeExecutor,
) -> None:
    executor = make_executor()
    executor._registry_settings = RegistrySettings(heartbeat_interval_ms=60_000)
    early = executor.task(id="early", timeout_ms=1_000, run=identity)
    await executor.start()
    await (await executor.enqueue_task(early, 1)).wait_and_get_execution(timeout=10)
    executor.task(id="late", timeout_ms=1_000, run=identity)  # long after the first beat

    async def listed_tasks() -> tuple[str, ...] | None:
        (worker,) = await executor.list_workers()
        return worker.task_ids if "late" in worker.task_ids else None

    assert await wait_until(listed_tasks, timeout=2) == ("early", "late")


async def test_heartbeats_refresh_the_row_and_register_again_when_it_is_gone(
    make_executor: MakeExecutor, storage: DurableStorage
) -> None:
    executor = make_executor()
    executor._registry_settings = RegistrySettings(heartbeat_interval_ms=20)
    executor.task(id="a", timeout_ms=1_000, run=identity)
    await executor.start()
    (registered,) = await executor.list_workers()

    async def beat_after(ms: int) -> bool:
        workers = await executor.list_workers()
        return bool(workers) and workers[0].heartbeat_at_ms > ms

    await wait_until(lambda: beat_after(registered.heartbeat_at_ms), timeout=5)
    await require(storage, WorkerRegistry, "test").deregister_worker(executor.executor_id)
    await wait_until(lambda: beat_after(0), timeout=5, message="a new registration")
    (again,) = await executor.list_workers()
    assert (again.started_at_ms, again.task_ids) == (registered.started_at_ms, ("a",))


async def test_a_worker_without_heartbeats_ages_out_and_is_forgotten(
    make_executor: MakeExecutor, storage: DurableStorage
) -> None:
    silent = make_executor()
    await silent.start()
    silent_presence = presence(silent)
    for loop in silent_presence._loops:  # alive in storage, silent from now on
        await loop.stop()
    observer = make_executor()
    assert [w.executor_id for w in await observer.list_workers()] == [silent.executor_id]
    now = silent._clock()
    observer._clock = lambda: now + ALIVE_MS + 1_000
    assert await observer.list_workers() == []
    registry = require(storage, WorkerRegistry, "test")
    everyone = await registry.list_workers(now_ms=now, alive_within_ms=10**12)
    assert [w.executor_id for w in everyone] == [silent.executor_id]  # not deleted yet
    observer._clock = lambda: now + RegistrySettings().forget_after_ms + 1_000
    await observer.start()  # the only live worker: it leads, and forgets the dead
    await presence(observer).report_unserved()
    everyone = await registry.list_workers(now_ms=now, alive_within_ms=10**12)
    assert [w.executor_id for w in everyone] == [observer.executor_id]


async def test_an_unserved_task_is_warned_about_once_and_shown_in_reads(
    make_executor: MakeExecutor, caplog: pytest.LogCaptureFixture
) -> None:
    producer = make_executor()  # defines the task, never starts: enqueues only
    task_b = producer.task(id="b", timeout_ms=1_000, run=identity)
    handles = [await producer.enqueue_task(task_b, n) for n in range(3)]
    runner = make_executor()
    task_a = runner.task(id="a", timeout_ms=1_000, run=identity)
    await runner.start()
    done = await (await runner.enqueue_task(task_a, 1)).wait_and_get_execution(timeout=10)
    caplog.set_level(logging.WARNING, logger="durable_execution")
    await presence(runner).report_unserved()
    (warning,) = warnings_about(caplog, "b")
    assert "3 ready execution(s)" in warning
    stored = [await handle.get_execution() for handle in handles]
    oldest = min(stored, key=lambda e: (e.created_at, e.execution_id))
    assert oldest.execution_id in warning
    await presence(runner).report_unserved()
    assert len(warnings_about(caplog, "b")) == 1  # once
    waiting = await handles[0].get_execution(check_workers=True)
    assert (waiting.status, waiting.unserved, waiting.unserved_task_ids) == (S.READY, True, ("b",))
    plain = await handles[0].get_execution()
    assert (plain.unserved, plain.unserved_task_ids) == (None, None)  # not asked: not read
    finished = await runner.get_execution(done.execution_id, check_workers=True)
    assert (finished.unserved, finished.unserved_task_ids) == (False, ())

    await producer.start()  # now it serves b: they run, and nothing is reported any more
    for handle in handles:
        assert (await handle.wait_and_get_execution(timeout=10)).status is S.COMPLETED
    await presence(runner).report_unserved()
    assert len(warnings_about(caplog, "b")) == 1


async def test_only_the_earliest_started_worker_reports(
    make_executor: MakeExecutor, caplog: pytest.LogCaptureFixture
) -> None:
    producer = make_executor()
    task_b = producer.task(id="b", timeout_ms=1_000, run=identity)
    await producer.enqueue_task(task_b, 1)
    first, second = make_executor(), make_executor()
    await first.start()
    await second.start()  # in the same millisecond or not: the executor ids decide then
    leads = (await first.list_workers())[0].executor_id == first.executor_id
    leader, follower = (first, second) if leads else (second, first)
    caplog.set_level(logging.WARNING, logger="durable_execution")
    await presence(follower).report_unserved()
    assert warnings_about(caplog, "b") == []
    await presence(leader).report_unserved()
    assert len(warnings_about(caplog, "b")) == 1


async def test_children_of_an_unregistered_task_are_stored_and_reported(
    make_executor: MakeExecutor, caplog: pytest.LogCaptureFixture
) -> None:
    elsewhere = make_executor()  # the only executor that defines the child's task
    orphan = elsewhere.task(id="orphan", timeout_ms=1_000, run=lambda ctx, i: i * 2)
    executor = make_executor()
    parent = executor.parent_task(
        id="parent",
        timeout_ms=1_000,
        run_parent=lambda ctx, i: {"output": i, "children": [ChildTask(orphan, i)]},
    )
    await executor.start()
    handle = await executor.enqueue_task(parent, 21)

    async def waiting() -> Any:
        execution = await handle.get_execution(check_workers=True)
        return execution if execution.status is S.WAITING_FOR_CHILDREN else None

    execution = await wait_until(waiting, timeout=10)
    assert (execution.unserved, execution.unserved_task_ids) == (True, ("orphan",))
    (child_id,) = execution.child_execution_ids
    child = await executor.get_execution(child_id, check_workers=True)
    assert (child.status, child.unserved_task_ids) == (S.READY, ("orphan",))
    caplog.set_level(logging.WARNING, logger="durable_execution")
    await presence(executor).report_unserved()
    (warning,) = warnings_about(caplog, "orphan")
    assert child_id in warning

    await elsewhere.start()
    finished = await handle.wait_and_get_execution(timeout=10)
    assert finished.status is S.COMPLETED
    assert finished.output["children_outputs"][0]["output"] == 42


async def test_a_storage_without_the_registry_runs_as_before_but_cannot_list(
    make_executor: MakeExecutor,
) -> None:
    executor = make_executor(DelegatingStorage(InMemoryStorage()))
    task = executor.task(id="a", timeout_ms=1_000, run=identity)
    with pytest.raises(UnsupportedByStorageError, match=r"DelegatingStorage.*WorkerRegistry"):
        await executor.list_workers()
    await executor.start()
    handle = await executor.enqueue_task(task, 5)
    assert (await handle.wait_and_get_execution(timeout=10)).output == 5
    assert (await handle.get_execution()).unserved is None
    with pytest.raises(UnsupportedByStorageError, match="check_workers"):
        await handle.get_execution(check_workers=True)
    with pytest.raises(UnsupportedByStorageError, match="list the workers"):
        await executor.list_workers()


async def test_the_background_look_warns_without_being_called(
    make_executor: MakeExecutor, caplog: pytest.LogCaptureFixture
) -> None:
    producer = make_executor()
    await producer.enqueue_task(producer.task(id="b", timeout_ms=1_000, run=identity), 1)
    runner = make_executor()
    runner._registry_settings = RegistrySettings(unserved_check_interval_ms=20)
    caplog.set_level(logging.WARNING, logger="durable_execution")
    await runner.start()
    await wait_until(lambda: warnings_about(caplog, "b"), timeout=5, message="the warning")


class _RefusesTheFirstRegistration(InMemoryStorage):
    def __init__(self) -> None:
        super().__init__()
        self.refused = 0

    async def register_worker(self, worker: WorkerInfo) -> None:
        if not self.refused:
            self.refused += 1
            raise DurableStorageError("injected: the storage is down")
        await super().register_worker(worker)


async def test_a_failed_registration_does_not_fail_the_start_the_heartbeat_registers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    storage = _RefusesTheFirstRegistration()
    executor = DurableExecutor(storage, background_process_interval_ms=20)
    executor._registry_settings = RegistrySettings(heartbeat_interval_ms=20)
    task = executor.task(id="a", timeout_ms=1_000, run=identity)
    async with executor:
        assert "registering executor" in caplog.text
        assert storage.refused == 1
        (worker,) = await wait_until(executor.list_workers, timeout=5, message="a registration")
        assert worker.task_ids == ("a",)
        handle = await executor.enqueue_task(task, 3)
        assert (await handle.wait_and_get_execution(timeout=10)).output == 3
    assert await executor.list_workers() == []
