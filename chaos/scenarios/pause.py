"""(c) SIGSTOP of a worker past its leases, then SIGCONT: its late results are refused.

One worker claims every execution (tasks that sleep, then return their value and their process
id) and is SIGSTOPped while they all run. A second worker starts and takes them over when the
leases end. The first stays stopped for ``pause_leases`` leases, then gets SIGCONT: its runs
wake up past their end and return at once, and their outcomes go to the storage. Two kinds of
runs put both fences to the test:

- *short* ones (``short_ms``): the new owner completed them before SIGCONT; the late outcome
  finds the execution finished, and the expected status refuses it;
- *long* ones (the pause minus a quarter of a lease): the new owner still runs them at SIGCONT;
  the late outcome finds the execution ``running``, as it expects, and only the lease token
  (the new owner's claim took a new one) refuses it.

The first worker is then stopped gracefully (SIGTERM drains every pending write) before the
evidence is read. The checks, beyond the tally's: every result recorded is the new owner's
(the recorded process id); late results of both kinds did reach the storage (else a fence was
not put to the test); the stopped worker survived. Recovery: from SIGSTOP to the new owner's
start of the last run it took over (about ``lease_ms`` plus a poll).
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

from ..harness import Store, Workers, collect, controller, wait_for
from ..report import Report
from ..runlog import RunEntry, read_runs
from ..tally import takeover_delays
from .common import delay_summary, drain

__all__ = ["FULL", "QUICK", "PauseSettings", "run"]


@dataclass(frozen=True)
class PauseSettings:
    executions: int = 100  # half short, half long
    short_ms: int = 1_000
    lease_ms: int = 1_000
    pause_leases: float = 4.0  # how long the worker stays stopped, in leases
    grace_s: float = 30.0

    @property
    def pause_s(self) -> float:
        return self.pause_leases * self.lease_ms / 1000

    @property
    def long_ms(self) -> int:
        """Overdue at SIGCONT, yet still running on the new owner (which started it at least
        two thirds of a lease after SIGSTOP: the last renewal was at most a third before)."""
        return round(self.pause_s * 1000 - self.lease_ms / 4)


FULL = PauseSettings()
QUICK = PauseSettings(executions=20, lease_ms=500)


def _ends(runs: list[RunEntry], pid: int, after: float) -> dict[str, float]:
    """When the runs of ``pid`` ended, after ``after``, by execution."""
    return {e.execution_id: e.at for e in runs if e.pid == pid and e.kind == "end" and e.at > after}


async def run(store: Store, settings: PauseSettings = FULL) -> Report:
    """Run the scenario on ``store``; its report."""
    report = Report("pause", store.backend)
    flags = ("--lease-ms", str(settings.lease_ms))
    async with controller(store) as (executor, tasks), Workers(store, flags) as workers:
        first = await workers.start("paused")
        durations = [settings.short_ms, settings.long_ms] * (settings.executions // 2)
        handles = await executor.enqueue_tasks(
            [(tasks.owned, {"n": n, "ms": ms}) for n, ms in enumerate(durations)]
        )
        ids = [h.execution_id for h in handles]

        def all_started_on_first() -> bool:
            runs = read_runs(store.runs_directory)
            return sum(e.kind == "start" and e.pid == first.pid for e in runs) >= len(ids)

        await wait_for(all_started_on_first, timeout=30, message="the first worker's runs")
        await store.pause(first.pid)
        paused_at = time.time()  # after the pause took effect: later events come after SIGCONT
        try:
            second = await workers.start("new_owner")
            await wait_for(
                lambda: time.time() >= paused_at + settings.pause_s, timeout=60, message="pause"
            )
        finally:
            os.kill(first.pid, signal.SIGCONT)
        resumed_at = time.time()
        await drain(executor.storage, ids, settings.grace_s, report)
        exit_code = await workers.stop(first)  # drains its pending (late) writes
        evidence = await collect(store, executor.storage, ids)
    report.tally = evidence.tally
    delays, never = takeover_delays(evidence.runs, [(paused_at, first.pid)])
    report.recovery_s = max(delays) if delays else None
    report.recovery = "from SIGSTOP to the new owner's start of the last run it took over"
    late = _ends(evidence.runs, first.pid, paused_at)
    new = _ends(evidence.runs, second.pid, paused_at)
    while_running = sum(at < new.get(i, float("inf")) for i, at in late.items())
    owners = {i: e.output.get("pid") for i, e in evidence.executions.items() if e.output}
    recorded_late = sum(owners.get(i) == first.pid for i in late)
    report.notes += [
        f"{len(ids)} runs of {settings.short_ms} and {settings.long_ms} ms, lease_ms "
        f"{settings.lease_ms}, stopped for {resumed_at - paused_at:.1f} s",
        f"taken over: {delay_summary(delays)}; never restarted: {never}",
        f"late results: {len(late)} runs of the stopped worker returned after SIGCONT, "
        f"{while_running} of them while the new owner still ran the execution; "
        f"{recorded_late} recorded",
        f"results recorded by the new owner: {sum(p == second.pid for p in owners.values())}",
    ]
    if recorded_late:
        report.problems.append(f"{recorded_late} late results of the stopped worker recorded")
    if not while_running or while_running == len(late):
        report.problems.append(
            "late results did not come both during and after the new owner's runs: "
            "a fence was not put to the test"
        )
    if exit_code != 0:
        report.problems.append(f"the stopped worker did not shut down cleanly ({exit_code})")
    return report
