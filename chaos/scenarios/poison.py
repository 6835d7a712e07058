"""(e) A poison task: one task that calls ``os._exit(1)``, beside 50 healthy ones, on one worker
restarted after each death.

All 51 are enqueued before the worker starts, so they are claimed together and the healthy
ones die with the poison task. The harness is the supervisor: it starts the worker again each
time it dies, until all 51 finished or ``bound_s`` passed. With heartbeat leases and
``max_lease_expiries`` the poison task ends ``failed`` (error type ``crashed``) after that many
deaths, and the healthy ones complete; without them it never ends (the report then says how
far it got: healthy done X/50, deaths N). Recovery: from the enqueue until all 51 finished.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from ..harness import Store, Workers, collect, controller, unfinished
from ..report import Report

__all__ = ["FULL", "QUICK", "PoisonSettings", "run"]


@dataclass(frozen=True)
class PoisonSettings:
    healthy: int = 50
    lease_ms: int = 500
    max_lease_expiries: int = 10  # the executor's default
    bound_s: float = 90.0


FULL = PoisonSettings()
QUICK = PoisonSettings(lease_ms=300, max_lease_expiries=3, bound_s=30.0)


async def run(store: Store, settings: PoisonSettings = FULL) -> Report:
    """Run the scenario on ``store``; its report."""
    report = Report("poison", store.backend)
    flags = (
        "--lease-ms",
        str(settings.lease_ms),
        "--max-lease-expiries",
        str(settings.max_lease_expiries),
    )
    async with controller(store) as (executor, tasks), Workers(store, flags) as workers:
        healthy = await executor.enqueue_tasks(
            [(tasks.healthy, {"n": n, "ms": 50}) for n in range(settings.healthy)]
        )
        poison = await executor.enqueue_task(tasks.poison, {"n": 0, "ms": 10})
        ids = [h.execution_id for h in (*healthy, poison)]
        started = time.monotonic()
        deaths = 0
        worker = await workers.start("worker-0")
        while await unfinished(executor.storage, ids):
            if time.monotonic() - started > settings.bound_s:
                break
            try:
                await asyncio.wait_for(worker.process.wait(), 0.05)
            except TimeoutError:
                continue
            deaths += 1
            worker = await workers.start(f"worker-{deaths}")
        elapsed = time.monotonic() - started
        finished = await unfinished(executor.storage, ids) == 0
        evidence = await collect(
            store, executor.storage, ids, expected_to_fail={poison.execution_id}
        )
        (record,) = await executor.storage.get_executions([poison.execution_id])
    error = record.error
    ending = (
        f"{record.status.value}, {error.error_type.value if error else 'no error'}, "
        f"{record.lease_expiries} lease expiries"
    )
    report.tally = evidence.tally
    healthy_done = sum(
        evidence.executions[h.execution_id].status == "completed"
        for h in healthy
        if h.execution_id in evidence.executions
    )
    report.recovery_s = elapsed if finished else None
    report.recovery = "from the enqueue until all 51 executions finished"
    report.notes += [
        f"healthy done {healthy_done}/{settings.healthy}, deaths {deaths}, "
        f"max_lease_expiries {settings.max_lease_expiries}, lease_ms {settings.lease_ms}",
        f"the poison task: {ending}",
    ]
    if not finished:
        report.problems.append(f"not finished within {settings.bound_s:.0f} s")
    if healthy_done != settings.healthy:
        report.problems.append(f"only {healthy_done} of {settings.healthy} healthy tasks done")
    if error is None or error.error_type.value != "crashed" or record.status.value != "failed":
        report.problems.append("the poison task did not end failed as crashed")
    return report
