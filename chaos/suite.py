"""The list of scenarios, and how to run one: in a temporary directory, on a fresh store,
within a time bound, reporting a failure instead of raising."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import tempfile
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from .harness import Store, postgres_store, sqlite_store
from .pgserver import PostgresUnavailable
from .report import Report
from .scenarios import disk, kills, pause, poison, restarts

__all__ = ["SCENARIOS", "Scenario", "run_scenario"]

Runner = Callable[["Context"], Awaitable[Report]]


@dataclass(frozen=True)
class Context:
    """What a scenario runs with: its backend, directory, settings and PostgreSQL server."""

    backend: str
    directory: Path
    quick: bool
    postgres_dsn: str
    seed: int | None

    @contextlib.asynccontextmanager
    async def store(self) -> AsyncIterator[Store]:
        """A fresh store of the context's backend (an SQLite file, a PostgreSQL schema)."""
        if self.backend == "sqlite":
            async with sqlite_store(self.directory) as store:
                yield store
        else:
            async with postgres_store(self.postgres_dsn, self.directory) as store:
                yield store


@dataclass(frozen=True)
class Scenario:
    """A scenario: the backends it runs on, how long it may take, and its runner."""

    backends: tuple[str, ...]
    bound_s: float  # the whole scenario, set-up and tally included
    quick_bound_s: float
    run: Runner


async def _kills(context: Context) -> Report:
    settings = kills.QUICK if context.quick else kills.FULL
    if context.seed is not None:
        settings = dataclasses.replace(settings, seed=context.seed)
    async with context.store() as store:
        return await kills.run(store, settings)


async def _restarts(context: Context) -> Report:
    settings = restarts.QUICK if context.quick else restarts.FULL
    try:
        return await restarts.run(context.directory, settings)
    except PostgresUnavailable as exc:
        return Report("restarts", "postgres", skipped=str(exc))


async def _pause(context: Context) -> Report:
    async with context.store() as store:
        return await pause.run(store, pause.QUICK if context.quick else pause.FULL)


async def _disk(context: Context) -> Report:
    try:
        return await disk.run(context.directory, disk.QUICK if context.quick else disk.FULL)
    except disk.DiskUnavailable as exc:
        return Report("disk", "sqlite", skipped=str(exc))


async def _poison(context: Context) -> Report:
    async with context.store() as store:
        return await poison.run(store, poison.QUICK if context.quick else poison.FULL)


SCENARIOS: dict[str, Scenario] = {
    "kills": Scenario(("sqlite", "postgres"), 240, 45, _kills),
    "restarts": Scenario(("postgres",), 150, 45, _restarts),
    "pause": Scenario(("sqlite", "postgres"), 120, 45, _pause),
    "disk": Scenario(("sqlite",), 150, 45, _disk),
    "poison": Scenario(("sqlite", "postgres"), 150, 45, _poison),
}


async def run_scenario(
    name: str, backend: str, *, quick: bool, postgres_dsn: str, seed: int | None = None
) -> Report:
    """Run one scenario on one backend; never raises: a scenario that could not finish is a
    failed report."""
    scenario = SCENARIOS[name]
    bound = scenario.quick_bound_s if quick else scenario.bound_s
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"chaos-{name}-") as directory:
        context = Context(backend, Path(directory), quick, postgres_dsn, seed)
        try:
            report = await asyncio.wait_for(scenario.run(context), bound)
        except TimeoutError:
            report = Report(name, backend, problems=[f"did not finish within {bound:.0f} s"])
        except Exception as exc:  # a scenario that broke is a failure to report, not a crash
            where = traceback.extract_tb(exc.__traceback__)[-1]
            report = Report(name, backend, problems=[f"{type(exc).__name__}: {exc}"])
            report.notes.append(f"raised at {where.filename}:{where.lineno} in {where.name}")
    report.elapsed_s = time.monotonic() - started
    return report
