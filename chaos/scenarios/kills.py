"""(a) kill -9 of a random worker every ~2 s among 3 workers, under a steady load of leaves,
trees with completion tasks, and sequences.

The harness enqueues roots at a steady rate for the whole window while a killer SIGKILLs a
random worker every ``kill_every_s`` (uniformly 0.5 to 1.5 times that; chosen among the
workers running something at that moment, as their run logs say) and starts a new one in its
place at once. Then the work drains (``grace_s`` at most) and the evidence is tallied.
Recovery: from a kill to the start, on another worker, of the last run it interrupted (the
worst over all kills); expect about ``lease_ms`` plus a poll.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from pathlib import Path

from ..harness import Store, Worker, Workers, collect, controller
from ..report import Report
from ..runlog import read_runs
from ..tally import takeover_delays
from ..workload import Enqueuer
from .common import delay_summary, drain

__all__ = ["FULL", "QUICK", "KillSettings", "run"]


@dataclass(frozen=True)
class KillSettings:
    workers: int = 3
    seconds: float = 60.0  # the kill window, and the enqueue window
    kill_every_s: float = 2.0
    roots_per_second: float = 22.0  # 4 executions per root: ~5,300 executions in 60 s
    lease_ms: int = 2_000
    grace_s: float = 60.0
    seed: int | None = None


FULL = KillSettings()
QUICK = KillSettings(seconds=3.0, kill_every_s=0.75, roots_per_second=30.0, lease_ms=500)


def _victim(rng: random.Random, pool: list[Worker], runs: Path) -> int:
    """The slot of a random worker among those running something now (by their run logs),
    or of any worker if none is: a kill that interrupts no run tests nothing (the short
    version, with its few kills of fast tasks, sometimes missed every run on a busy machine)."""
    running: dict[int, int] = {}
    for entry in read_runs(runs):
        running[entry.pid] = running.get(entry.pid, 0) + (1 if entry.kind == "start" else -1)
    busy = [slot for slot, worker in enumerate(pool) if running.get(worker.pid, 0) > 0]
    return rng.choice(busy) if busy else rng.randrange(len(pool))


async def run(store: Store, settings: KillSettings = FULL) -> Report:
    """Run the scenario on ``store``; its report."""
    seed = settings.seed if settings.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    report = Report("kills", store.backend)
    flags = ("--lease-ms", str(settings.lease_ms))
    kills: list[tuple[float, int]] = []
    async with controller(store) as (executor, tasks), Workers(store, flags) as workers:
        pool = list(
            await asyncio.gather(*(workers.start(f"w{i}") for i in range(settings.workers)))
        )

        async def killer() -> None:
            deadline = time.monotonic() + settings.seconds
            next_at = time.monotonic() + rng.uniform(0.5, 1.5) * settings.kill_every_s
            while next_at < deadline:
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                slot = _victim(rng, pool, store.runs_directory)
                kills.append((time.time(), pool[slot].pid))
                await workers.kill(pool[slot])
                pool[slot] = await workers.start(f"w{len(workers.started)}")
                next_at += rng.uniform(0.5, 1.5) * settings.kill_every_s

        enqueuer = Enqueuer(executor, tasks, settings.roots_per_second)
        await asyncio.gather(enqueuer.run_for(settings.seconds), killer())
        await drain(executor.storage, enqueuer.acknowledged, settings.grace_s, report)
        evidence = await collect(store, executor.storage, enqueuer.acknowledged)
    report.tally = evidence.tally
    delays, never = takeover_delays(evidence.runs, kills)
    report.recovery_s = max(delays) if delays else None
    report.recovery = (
        "from a SIGKILL to the restart elsewhere of the last run it interrupted (worst kill)"
    )
    report.notes += [
        f"{len(kills)} kills in {settings.seconds:.0f} s among {settings.workers} workers "
        f"(seed {seed}), {len(workers.started)} workers started, lease_ms {settings.lease_ms}",
        f"{len(enqueuer.acknowledged)} roots acknowledged, {enqueuer.refused} enqueues refused",
        f"interrupted runs taken over: {delay_summary(delays)}; never restarted: {never}",
        f"illegal transitions: {len(evidence.tally.illegal_transitions)}",
    ]
    if not kills:
        report.problems.append("no worker was killed")
    return report
