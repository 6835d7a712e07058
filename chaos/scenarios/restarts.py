"""(b) Three immediate restarts of a PostgreSQL server under load.

The suite starts a server of its own (:mod:`chaos.pgserver`: another port, a throwaway data
directory; never the shared server). Three workers run the workload while the harness
enqueues at a steady rate; every ``every_s`` the server is shut down in ``immediate`` mode (no
checkpoint: crash recovery at the next start, as after a crash) and started again at once.
Recovery: from the server accepting connections again to the next run that starts (a claim
went through); the worst of the restarts. The enqueues that fail meanwhile are refused, not
acknowledged; nothing acknowledged may be lost.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from ..harness import Workers, collect, controller, postgres_store
from ..pgserver import throwaway_postgres
from ..report import Report
from ..runlog import RunEntry
from ..workload import Enqueuer
from .common import delay_summary, drain

__all__ = ["FULL", "QUICK", "RestartSettings", "run"]


@dataclass(frozen=True)
class RestartSettings:
    restarts: int = 3
    every_s: float = 5.0  # load before each restart, and after the last
    workers: int = 3
    roots_per_second: float = 20.0
    lease_ms: int = 2_000
    grace_s: float = 60.0


FULL = RestartSettings()
QUICK = RestartSettings(every_s=0.5, roots_per_second=30.0, grace_s=30.0)


def _first_start_after(runs: list[RunEntry], moment: float) -> float | None:
    return next((e.at - moment for e in runs if e.kind == "start" and e.at > moment), None)


async def run(directory: Path, settings: RestartSettings = FULL) -> Report:
    """Run the scenario on a server of its own; its report."""
    report = Report("restarts", "postgres")
    restarts: list[tuple[float, float]] = []
    async with (
        throwaway_postgres() as server,
        postgres_store(server.dsn, directory) as store,
        controller(store) as (executor, tasks),
        Workers(store, ("--lease-ms", str(settings.lease_ms))) as workers,
    ):
        await asyncio.gather(*(workers.start(f"w{i}") for i in range(settings.workers)))
        enqueuer = Enqueuer(executor, tasks, settings.roots_per_second)

        async def restart() -> None:
            for _ in range(settings.restarts):
                await asyncio.sleep(settings.every_s)
                restarts.append(await server.restart_immediately())

        # The load lasts until every_s after the last restart: a restart takes a while (the
        # server's shutdown and crash recovery, longer on a busy machine), and work must have
        # had a chance to flow again after each of them.
        stop = asyncio.Event()

        async def restart_then_stop() -> None:
            try:
                await restart()
                await asyncio.sleep(settings.every_s)
            finally:
                stop.set()

        await asyncio.gather(enqueuer.run_for(3_600, until=stop), restart_then_stop())
        await drain(executor.storage, enqueuer.acknowledged, settings.grace_s, report)
        evidence = await collect(store, executor.storage, enqueuer.acknowledged)
        deaths = sum(not w.alive for w in workers.started)
    report.tally = evidence.tally
    delays = [_first_start_after(evidence.runs, ready) for _, ready in restarts]
    measured = [d for d in delays if d is not None]
    report.recovery_s = max(measured) if measured else None
    report.recovery = "from the server accepting connections again to the next run's start"
    report.notes += [
        "restarts (down for, then work again after): "
        + ", ".join(
            f"{ready - stopped:.2f} s / {'never' if d is None else f'{d:.2f} s'}"
            for (stopped, ready), d in zip(restarts, delays, strict=True)
        ),
        f"work again after: {delay_summary(measured)}",
        f"{len(enqueuer.acknowledged)} roots acknowledged, {enqueuer.refused} enqueues refused"
        + (f" ({enqueuer.errors[0]})" if enqueuer.errors else ""),
        f"workers that died: {deaths}",
    ]
    if len(restarts) != settings.restarts:
        report.problems.append(f"only {len(restarts)} restarts of {settings.restarts}")
    if len(measured) != len(restarts):
        report.problems.append("work never flowed again after a restart")
    if deaths:
        report.problems.append(f"{deaths} workers died")
    return report
