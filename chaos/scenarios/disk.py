"""(d) A full disk under SQLite: writes fail, the workers log it and live on, and resume once
space is freed; nothing acknowledged is lost.

The database lives on a small tmpfs of its own (``mount -t tmpfs -o size=...``: the scenario
needs root, or the right to mount, and is skipped with the reason otherwise). Two workers run
the workload while the harness enqueues at a steady rate; then a filler file takes every free
byte of the tmpfs (written until ``ENOSPC``). The disk stays full for ``full_s`` after the
first failed write shows (a worker logging ``DurableStorageError``, or an enqueue refused);
then the filler is deleted and the load goes on for ``after_s``. Run logs and worker logs are
on another disk. Recovery: from the space freed to the next run that starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..harness import Workers, collect, controller, sqlite_store, wait_for
from ..report import Report
from ..workload import Enqueuer
from .common import drain

__all__ = ["FULL", "QUICK", "DiskSettings", "DiskUnavailable", "run"]


class DiskUnavailable(Exception):
    """No small filesystem can be mounted here (not root, or no right to mount)."""


@dataclass(frozen=True)
class DiskSettings:
    size_mb: int = 32
    workers: int = 2
    before_s: float = 3.0  # load before the disk fills
    full_s: float = 5.0  # full, once writes fail
    after_s: float = 3.0  # load after space is freed
    roots_per_second: float = 20.0
    lease_ms: int = 2_000
    grace_s: float = 60.0


FULL = DiskSettings()
QUICK = DiskSettings(size_mb=16, before_s=0.5, full_s=1.0, after_s=0.5)


@contextlib.contextmanager
def small_tmpfs(mount_point: Path, size_mb: int) -> Iterator[Path]:
    """A tmpfs of ``size_mb`` MiB mounted at ``mount_point``, unmounted at the end."""
    mount_point.mkdir(parents=True, exist_ok=True)
    command = ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(mount_point)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        raise DiskUnavailable(f"cannot run mount: {exc}") from exc
    if done.returncode != 0:
        raise DiskUnavailable(
            f"cannot mount a small tmpfs (needs root or the right to mount): {done.stderr.strip()}"
        )
    try:
        yield mount_point
    finally:
        result = subprocess.run(["umount", str(mount_point)], capture_output=True, timeout=30)
        if result.returncode != 0:  # still busy: detach it now, freed when released
            subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, timeout=30)


def fill(path: Path) -> int:
    """Write ``path`` until the filesystem has no byte left; the bytes written."""
    written = 0
    with open(path, "wb", buffering=0) as filler:
        for chunk in (1 << 20, 1 << 12, 1 << 9):
            block = b"\0" * chunk
            while True:
                try:
                    written += filler.write(block) or 0
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    return written


async def run(directory: Path, settings: DiskSettings = FULL) -> Report:
    """Run the scenario with the database on a small tmpfs under ``directory``; its report."""
    report = Report("disk", "sqlite")
    with small_tmpfs(directory / "disk", settings.size_mb) as disk:
        async with (
            sqlite_store(directory, database=disk / "chaos.db") as store,
            controller(store) as (executor, tasks),
            Workers(store, ("--lease-ms", str(settings.lease_ms))) as workers,
        ):
            await asyncio.gather(*(workers.start(f"w{i}") for i in range(settings.workers)))
            enqueuer = Enqueuer(executor, tasks, settings.roots_per_second)
            filler = disk / "filler"
            moments: dict[str, float] = {}

            async def disturb() -> None:
                await asyncio.sleep(settings.before_s)
                filled = await asyncio.to_thread(fill, filler)
                moments["filled"] = time.time()
                report.notes.append(f"filled {filled / (1 << 20):.1f} MiB of {settings.size_mb}")
                try:
                    await wait_for(
                        lambda: enqueuer.refused or workers.log_lines("DurableStorageError"),
                        timeout=30,
                        message="a write to fail on the full disk",
                    )
                    moments["failing"] = time.time()
                    await asyncio.sleep(settings.full_s)
                finally:
                    filler.unlink()
                    moments["freed"] = time.time()

            total_s = settings.before_s + settings.full_s + settings.after_s
            await asyncio.gather(enqueuer.run_for(total_s), disturb())
            await drain(executor.storage, enqueuer.acknowledged, settings.grace_s, report)
            evidence = await collect(store, executor.storage, enqueuer.acknowledged)
            errors = workers.log_lines("DurableStorageError")
            deaths = sum(not w.alive for w in workers.started)
    report.tally = evidence.tally
    freed = moments.get("freed", time.time())
    restart = next((e.at for e in evidence.runs if e.kind == "start" and e.at > freed), None)
    report.recovery_s = None if restart is None else restart - freed
    report.recovery = "from the space freed to the next run's start"
    full_for = freed - moments.get("filled", freed)
    report.notes += [
        f"tmpfs of {settings.size_mb} MiB, full for {full_for:.1f} s "
        f"(writes failing for {freed - moments.get('failing', freed):.1f} s)",
        f"workers' log lines naming DurableStorageError: {errors}; workers that died: {deaths}",
        f"{len(enqueuer.acknowledged)} roots acknowledged, {enqueuer.refused} enqueues refused"
        + (f" ({enqueuer.errors[0]})" if enqueuer.errors else ""),
    ]
    if "failing" not in moments:
        report.problems.append("no write failed while the disk was full")
    if errors == 0:
        report.problems.append("the workers logged no DurableStorageError")
    if deaths:
        report.problems.append(f"{deaths} workers died")
    if restart is None:
        report.problems.append("no run started after space was freed")
    return report
