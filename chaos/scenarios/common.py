"""Pieces the scenarios share: draining the work, and summing delays up."""

from __future__ import annotations

import statistics

from durable_execution.storage.protocol import DurableStorage

from ..harness import ChaosError, wait_for
from ..report import Report

__all__ = ["delay_summary", "drain"]


async def drain(storage: DurableStorage, ids: list[str], grace_s: float, report: Report) -> None:
    """Wait (at most ``grace_s``) until every execution of ``ids`` finished; what is left
    then is stuck, which the tally reports."""

    async def all_finished() -> bool:
        finished: set[str] = set()
        for start in range(0, len(ids), 1000):
            finished |= await storage.find_finished(ids[start : start + 1000])
        return len(finished) == len(ids)

    try:
        await wait_for(all_finished, timeout=grace_s, interval=0.1, message="the work to finish")
    except ChaosError as exc:
        report.notes.append(str(exc))


def delay_summary(delays: list[float]) -> str:
    """``n, median, max`` of some delays, in words."""
    if not delays:
        return "none"
    return f"{len(delays)}, median {statistics.median(delays):.2f} s, max {max(delays):.2f} s"
