"""Heartbeat leases and poison tasks with real worker processes, on SQLite and PostgreSQL.

- A worker SIGKILLed while it runs a task whose timeout is an hour: another worker takes the
  execution over within the lease (plus a poll), not within the hour.
- A task that kills its process (``os._exit(1)``), enqueued with 50 healthy ones on a single
  worker restarted after each death: the healthy ones all complete, the poison task ends
  ``failed`` as ``crashed`` after ``max_lease_expiries`` deaths.

Both print what they measured (run with ``-s`` to see it; docs/reliability.md has figures).
The environment variables ``RECOVERY_LEASE_MS`` (1000 by default) and
``POISON_MAX_LEASE_EXPIRIES`` (4 by default, to keep the suite short; 10, the executor's
default, for the figures) change the scenarios.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from durable_execution import DurableExecutionErrorType, DurableExecutor, DurableTaskExecutionStatus
from durable_execution.storage.transitions import SUSPECT_LEASE_EXPIRIES

from .helpers import wait_until
from .processes import SharedStore, StartWorker, read_lines
from .workers.tasks import define_tasks

S = DurableTaskExecutionStatus

RECOVERY_LEASE_MS = int(os.environ.get("RECOVERY_LEASE_MS", "1000"))
POISON_LEASE_MS = 500
POISON_MAX_LEASE_EXPIRIES = int(os.environ.get("POISON_MAX_LEASE_EXPIRIES", "4"))
HEALTHY = 50
POLL_S = 0.02  # the workers' background_process_interval_ms


async def test_a_killed_workers_hour_long_run_is_taken_over_within_its_lease(
    tmp_path: Path, store: SharedStore, start_worker: StartWorker, controller: DurableExecutor
) -> None:
    log, marker = tmp_path / "hour.log", tmp_path / "hour.marker"
    tasks = define_tasks(controller)
    flags = ("--lease-ms", str(RECOVERY_LEASE_MS), "--leeway-ms", "10000")
    first = await start_worker("first", *flags)
    handle = await controller.enqueue_task(
        tasks["hour_long"], {"log": str(log), "marker": str(marker)}
    )
    await wait_until(lambda: len(read_lines(log)) == 1, message="the first worker's run")
    second = await start_worker("second", *flags)
    claimed = (await controller.storage.get_executions([handle.execution_id]))[0]
    assert claimed.expires_at_ms is not None

    async def renewed_twice() -> bool:
        (now,) = await controller.storage.get_executions([handle.execution_id])
        lease_end = now.expires_at_ms or 0
        return lease_end >= (claimed.expires_at_ms or 0) + 2 * RECOVERY_LEASE_MS // 3

    # Renewed while the second worker watches: it never takes the run over.
    await wait_until(renewed_twice, timeout=10, message="two renewals")
    assert len(read_lines(log)) == 1
    first.kill()
    killed_at = time.time()
    await first.wait()
    await wait_until(lambda: len(read_lines(log)) == 2, timeout=30, message="the takeover")
    _, pid, started = read_lines(log)[1].split()
    recovery_s = float(started) - killed_at
    print(
        f"\n[{store.backend}] recovery after SIGKILL, timeout_ms one hour, lease_ms "
        f"{RECOVERY_LEASE_MS}: {recovery_s:.3f} s"
    )
    assert int(pid) == second.pid
    assert recovery_s < RECOVERY_LEASE_MS / 1000 + POLL_S + 1.0  # slack: a busy machine
    execution = await handle.wait_and_get_execution(timeout=10)
    assert (execution.status, execution.output) == (S.COMPLETED, second.pid)
    assert execution.lease_expiries == 1


async def test_a_poison_task_ends_crashed_and_the_healthy_ones_beside_it_complete(
    tmp_path: Path, store: SharedStore, start_worker: StartWorker, controller: DurableExecutor
) -> None:
    log = str(tmp_path / "runs.log")
    tasks = define_tasks(controller)
    flags = (
        "--lease-ms",
        str(POISON_LEASE_MS),
        "--max-lease-expiries",
        str(POISON_MAX_LEASE_EXPIRIES),
    )
    healthy = await controller.enqueue_tasks(
        [(tasks["healthy"], {"n": n, "seconds": 0.05, "log": log}) for n in range(HEALTHY)]
    )
    poison = await controller.enqueue_task(tasks["poison"], {"seconds": 0.01, "log": log})
    ids = [h.execution_id for h in (*healthy, poison)]

    async def all_finished() -> bool:
        return len(await controller.storage.find_finished(ids)) == len(ids)

    # The supervisor: one worker, started again each time it dies.
    started = time.monotonic()
    deaths = 0
    worker = await start_worker("worker-0", *flags)
    while not await all_finished():
        assert time.monotonic() - started < 120, f"not finished after {deaths} deaths"
        try:
            await asyncio.wait_for(worker.wait(), 0.05)
        except TimeoutError:
            continue
        deaths += 1
        worker = await start_worker(f"worker-{deaths}", *flags)
    elapsed = time.monotonic() - started
    print(
        f"\n[{store.backend}] poison task beside {HEALTHY} healthy ones, one worker, "
        f"max_lease_expiries {POISON_MAX_LEASE_EXPIRIES}, lease_ms {POISON_LEASE_MS}: "
        f"{deaths} deaths, all finished in {elapsed:.1f} s"
    )
    done = await controller.wait_and_get_executions(healthy, timeout=10)
    assert [(e.status, e.output) for e in done] == [(S.COMPLETED, n) for n in range(HEALTHY)]
    assert max(e.lease_expiries for e in done) <= SUSPECT_LEASE_EXPIRIES
    crashed = await poison.get_execution()
    assert (crashed.status, crashed.lease_expiries) == (S.FAILED, POISON_MAX_LEASE_EXPIRIES)
    assert crashed.error is not None
    assert crashed.error.error_type is DurableExecutionErrorType.CRASHED
    assert deaths == POISON_MAX_LEASE_EXPIRIES
