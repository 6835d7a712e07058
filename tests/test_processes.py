"""Real processes sharing one storage (a SQLite file, a PostgreSQL schema): SIGKILL mid-tree,
SIGSTOP fencing, and many processes running each execution exactly once."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import sys
from pathlib import Path

from durable_execution import DurableExecutor, DurableTaskExecutionStatus
from durable_execution.handle import DurableTaskHandle

from .helpers import wait_until
from .processes import WORKERS, SharedStore, StartWorker, read_lines
from .workers.tasks import define_tasks

S = DurableTaskExecutionStatus


async def test_sigkill_mid_tree_then_a_new_worker_finishes_it(
    tmp_path: Path, start_worker: StartWorker, controller: DurableExecutor
) -> None:
    log = tmp_path / "leaves.log"
    tasks = define_tasks(controller)
    first = await start_worker("first", "--concurrency", "2")
    handle = await controller.enqueue_task(
        tasks["tree"], {"children": 6, "seconds": 0.3, "log": str(log)}
    )

    def mid_tree() -> bool:
        lines = read_lines(log)
        ended = sum(line.startswith("end") for line in lines)
        started = sum(line.startswith("start") for line in lines)
        return ended >= 2 and started > ended

    await wait_until(mid_tree, timeout=20, interval=0.005, message="the tree to be half done")
    first.kill()  # SIGKILL: no shutdown, no cleanup
    await first.wait()
    assert first.returncode == -signal.SIGKILL
    killed_mid_run = {line.split()[1] for line in read_lines(log) if line.startswith("start")} - {
        line.split()[1] for line in read_lines(log) if line.startswith("end")
    }
    assert killed_mid_run

    await start_worker("second")
    execution = await handle.wait_and_get_execution(timeout=30)
    assert execution.status is S.COMPLETED, execution.error
    assert execution.output == [i * 10 for i in range(6)]
    children = await controller.storage.get_executions(list(execution.child_execution_ids))
    assert [c.status for c in children] == [S.COMPLETED] * 6
    assert [c.retry_attempts for c in children] == [0] * 6  # a crash uses up no retry
    starts = collections.Counter(
        line.split()[1] for line in read_lines(log) if line.startswith("start")
    )
    for index in killed_mid_run:
        assert starts[index] == 2  # run again after the lease expired


async def test_a_paused_worker_cannot_overwrite_the_new_owners_result(
    tmp_path: Path, store: SharedStore, start_worker: StartWorker, controller: DurableExecutor
) -> None:
    marker = tmp_path / "fenced.log"
    tasks = define_tasks(controller, name="new_owner")
    paused = await start_worker("paused_owner", "--leeway-ms", "100")
    handle = await controller.enqueue_task(tasks["fenced"], {"seconds": 0.3, "marker": str(marker)})

    async def claimed() -> bool:
        return (await handle.get_execution()).status is S.RUNNING

    await wait_until(claimed, interval=0.002, message="the worker to claim the execution")
    await store.pause(paused.pid)
    try:
        await controller.start()  # expires the paused worker's lease, runs it again
        execution = await handle.wait_and_get_execution(timeout=20)
        assert (execution.status, execution.output) == (S.COMPLETED, "new_owner")
    finally:
        os.kill(paused.pid, signal.SIGCONT)
    # The paused worker wakes up, finishes its stale run and tries to record it.
    await wait_until(
        lambda: "paused_owner" in read_lines(marker), message="the stale run to return"
    )
    paused.send_signal(signal.SIGTERM)  # graceful: drains its pending writes before exiting
    assert await asyncio.wait_for(paused.wait(), 30) == 0
    final = await handle.get_execution()
    assert (final.status, final.output) == (S.COMPLETED, "new_owner")


async def test_three_workers_and_an_enqueuer_run_each_execution_exactly_once(
    tmp_path: Path, store: SharedStore, start_worker: StartWorker, controller: DurableExecutor
) -> None:
    log = tmp_path / "runs.log"
    tasks = define_tasks(controller)
    await asyncio.gather(*(start_worker(name) for name in ("one", "two", "three")))
    enqueuer = await asyncio.create_subprocess_exec(
        sys.executable,
        str(WORKERS / "enqueue.py"),
        store.url,
        str(log),
        "2000",
        "50",
        "10",
        stdout=asyncio.subprocess.PIPE,
    )
    stdout, _ = await asyncio.wait_for(enqueuer.communicate(), 60)
    assert enqueuer.returncode == 0
    ids = json.loads(stdout)
    task_handles = [DurableTaskHandle(controller, "counted", i) for i in ids["tasks"]]
    tree_handles = [DurableTaskHandle(controller, "counted_tree", i) for i in ids["trees"]]
    tasks_done = await controller.wait_and_get_executions(task_handles, timeout=120)
    trees_done = await controller.wait_and_get_executions(tree_handles, timeout=120)
    assert len(tasks_done) == 2000
    assert sorted(e.output for e in tasks_done) == sorted(n % 250 for n in range(2000))
    assert [e.output for e in trees_done] == [45] * 50
    runs = collections.Counter(read_lines(log))
    assert len(runs) == 2000 + 50 * 10
    assert set(runs.values()) == {1}  # nothing crashed, so nothing ran twice
    assert tasks["counted"].id == "counted"


async def test_a_killed_worker_ages_out_of_the_registry_a_stopped_one_leaves_at_once(
    start_worker: StartWorker, controller: DurableExecutor
) -> None:
    from durable_execution.executor.presence import RegistrySettings

    stopped, killed = await asyncio.gather(start_worker("stopped"), start_worker("killed"))
    workers = {w.pid: w for w in await controller.list_workers()}
    assert set(workers) == {stopped.pid, killed.pid}
    assert "crash_leaf" in workers[killed.pid].task_ids
    stopped.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(stopped.wait(), 30) == 0
    killed.kill()  # SIGKILL: its row stays, with its last heartbeat
    await killed.wait()
    (dead,) = await controller.list_workers()
    assert dead.pid == killed.pid
    alive_ms = RegistrySettings().alive_within_ms
    controller._clock = lambda: dead.heartbeat_at_ms + alive_ms  # still within the window
    assert [w.pid for w in await controller.list_workers()] == [killed.pid]
    controller._clock = lambda: dead.heartbeat_at_ms + alive_ms + 1  # no heartbeat for longer
    assert await controller.list_workers() == []
