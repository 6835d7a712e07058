"""The chaos harness: where the processes meet (a store), the worker processes, bounded waits,
and the evidence collected at the end.

Everything here is bounded and cleans up after itself: every wait has a timeout
(:func:`wait_for`), :class:`Workers` kills every process it started when its block ends
(whatever happened), and the stores drop their PostgreSQL schema or live in a temporary
directory. Only loopback is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from durable_execution import DurableExecutor, JsonSerializer
from durable_execution.storage import storage_from_url
from durable_execution.storage.protocol import DurableStorage

from .audit import AuditRow, install_postgres_audit, install_sqlite_audit, read_audit
from .runlog import RunEntry, read_runs
from .tally import Execution, Tally, tally
from .worker import PARENT_PID_VARIABLE
from .workload import Tasks, define_tasks, output_is_right

__all__ = [
    "DEFAULT_POSTGRES_DSN",
    "REPO",
    "ChaosError",
    "Evidence",
    "Store",
    "Worker",
    "Workers",
    "collect",
    "controller",
    "postgres_store",
    "sqlite_store",
    "unfinished",
    "wait_for",
]

REPO = Path(__file__).resolve().parents[1]
DEFAULT_POSTGRES_DSN = os.environ.get(
    "CHAOS_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)


class ChaosError(Exception):
    """A scenario could not be carried out as planned (a wait ran out, a worker never
    started): a failure of the scenario, reported as such."""


async def wait_for(
    condition: Callable[[], object],
    *,
    timeout: float,
    message: str,
    interval: float = 0.02,
) -> None:
    """Poll ``condition`` (plain, or async: a coroutine is awaited) until it gives a truthy
    value; raise :class:`ChaosError` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise ChaosError(f"timed out after {timeout:.0f} s waiting for {message}")
        await asyncio.sleep(interval)


# -- stores ------------------------------------------------------------------------------------


@dataclass
class Store:
    """Where a scenario's processes meet: a storage URL, and how to read its audit log."""

    backend: str  # "sqlite" or "postgres"
    url: str
    directory: Path  # run logs and worker logs go here
    sqlite_path: Path | None = None
    dsn: str = ""
    schema: str = ""

    @property
    def runs_directory(self) -> Path:
        return self.directory / "runs"

    async def read_audit(self) -> list[AuditRow]:
        return await read_audit(sqlite_path=self.sqlite_path, dsn=self.dsn, schema=self.schema)

    async def pause(self, pid: int) -> None:
        """SIGSTOP ``pid``; on SQLite at a moment it holds no write lock (a process paused
        inside a write transaction stalls every writer of the file until it resumes: a limit
        of SQLite's single writer, not what the scenario is about)."""
        if self.sqlite_path is None:
            os.kill(pid, signal.SIGSTOP)
            return
        for _ in range(500):
            os.kill(pid, signal.SIGSTOP)
            if not await asyncio.to_thread(_write_locked, self.sqlite_path):
                return
            os.kill(pid, signal.SIGCONT)
            await asyncio.sleep(0.002)  # let it finish its transaction, then try again
        raise ChaosError("the worker to pause never left its write transaction")


def _write_locked(path: Path) -> bool:
    conn = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        conn.close()


@contextlib.asynccontextmanager
async def sqlite_store(directory: Path, database: Path | None = None) -> AsyncIterator[Store]:
    """A new SQLite file (``database``, or one in ``directory``) with the audit installed."""
    path = database or directory / "chaos.db"
    storage = storage_from_url(f"sqlite:///{path}")
    await storage.initialize()
    await storage.close()
    await asyncio.to_thread(install_sqlite_audit, path)
    store = Store("sqlite", f"sqlite:///{path}", directory, sqlite_path=path)
    store.runs_directory.mkdir(parents=True, exist_ok=True)
    yield store


@contextlib.asynccontextmanager
async def postgres_store(dsn: str, directory: Path) -> AsyncIterator[Store]:
    """A new schema of its own on ``dsn``, with the audit installed; dropped at the end."""
    import psycopg
    from psycopg import sql

    from durable_execution.storage.postgres import PostgresStorage

    schema = f"chaos_{uuid.uuid4().hex[:12]}"
    try:
        storage = PostgresStorage(dsn, schema=schema, max_pool_size=1)
        await storage.initialize()
        await storage.close()
        await install_postgres_audit(dsn, schema)
        store = Store("postgres", f"{dsn}?schema={schema}", directory, dsn=dsn, schema=schema)
        store.runs_directory.mkdir(parents=True, exist_ok=True)
        yield store
    finally:
        with contextlib.suppress(psycopg.Error, OSError):
            async with await psycopg.AsyncConnection.connect(
                dsn, autocommit=True, connect_timeout=5
            ) as conn:
                await conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
                )


@contextlib.asynccontextmanager
async def controller(store: Store) -> AsyncIterator[tuple[DurableExecutor, Tasks]]:
    """An executor of the harness on the store, never started: it enqueues and reads."""
    storage = storage_from_url(store.url)
    executor = DurableExecutor(storage, background_process_interval_ms=50)
    tasks = define_tasks(executor, None)
    try:
        yield executor, tasks
    finally:
        await executor.shutdown()
        await storage.close()


# -- worker processes --------------------------------------------------------------------------


@dataclass
class Worker:
    """One worker process (``python -m chaos.worker``)."""

    name: str
    process: asyncio.subprocess.Process
    executor_id: str
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.returncode is None


@dataclass
class Workers:
    """Starts worker processes on a store; :meth:`close` (or leaving ``async with``) kills
    every one still alive, whatever happened."""

    store: Store
    flags: tuple[str, ...] = ()
    started: list[Worker] = field(default_factory=list)
    _logs: list[IO[bytes]] = field(default_factory=list)

    async def __aenter__(self) -> Workers:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self, name: str, *flags: str, timeout: float = 30) -> Worker:
        """Start a worker and wait (at most ``timeout`` s) until it says it is ready."""
        log_path = self.store.directory / f"{name}.log"
        log = self._open_log(log_path)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "chaos.worker",
            self.store.url,
            name,
            "--run-log",
            str(self.store.runs_directory),
            *self.flags,
            *flags,
            cwd=REPO,
            env={**os.environ, PARENT_PID_VARIABLE: str(os.getpid())},
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
        )
        worker = Worker(name, process, "", log_path)
        self.started.append(worker)
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), timeout)
        except TimeoutError:
            raise ChaosError(f"worker {name} did not start within {timeout} s") from None
        words = line.decode().split()
        if len(words) != 2 or words[0] != "ready":
            raise ChaosError(f"worker {name} failed to start: {line!r}; see {log_path}")
        worker.executor_id = words[1]
        return worker

    def _open_log(self, path: Path) -> IO[bytes]:
        log = open(path, "ab")  # noqa: SIM115 (closed in close(), after the process ended)
        self._logs.append(log)
        return log

    def alive(self) -> list[Worker]:
        return [w for w in self.started if w.alive]

    async def kill(self, worker: Worker) -> None:
        """SIGKILL (kill -9): no shutdown, no clean-up."""
        if worker.alive:
            with contextlib.suppress(ProcessLookupError):
                worker.process.kill()
        await asyncio.wait_for(worker.process.wait(), 10)

    async def stop(self, worker: Worker, timeout: float = 20) -> int | None:
        """SIGTERM (a graceful shutdown: runs finish, pending writes are drained), SIGKILL
        after ``timeout`` s; the exit code (None if it had to be killed)."""
        if worker.alive:
            with contextlib.suppress(ProcessLookupError):
                worker.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(worker.process.wait(), timeout)
        except TimeoutError:
            await self.kill(worker)
            return None

    async def close(self) -> None:
        for worker in self.started:
            if worker.alive:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGCONT)  # a paused worker cannot die otherwise
                    worker.process.kill()
            with contextlib.suppress(TimeoutError, ProcessLookupError):
                await asyncio.wait_for(worker.process.wait(), 10)
        for log in self._logs:
            log.close()
        self._logs.clear()

    def log_lines(self, containing: str) -> int:
        """How many lines of the workers' logs contain ``containing``."""
        count = 0
        for worker in self.started:
            if worker.log.exists():
                text = worker.log.read_text(encoding="utf-8", errors="replace")
                count += sum(containing in line for line in text.splitlines())
        return count


# -- evidence ----------------------------------------------------------------------------------


@dataclass
class Evidence:
    """What a scenario left behind, read once it is over."""

    audit: list[AuditRow]
    runs: list[RunEntry]
    executions: dict[str, Execution]
    tally: Tally


async def collect(
    store: Store,
    storage: DurableStorage,
    acknowledged: list[str],
    *,
    expected_to_fail: Collection[str] = (),
    batch: int = 500,
) -> Evidence:
    """Read the audit log, the run logs and every execution the audit saw or the
    application was told of, and tally them."""
    audit = await store.read_audit()
    ids = list(dict.fromkeys([*acknowledged, *(row.execution_id for row in audit)]))
    serializer = JsonSerializer()
    executions: dict[str, Execution] = {}
    for start in range(0, len(ids), batch):
        for record in await storage.get_executions(ids[start : start + batch]):
            executions[record.execution_id] = Execution(
                record.execution_id,
                record.task_id,
                record.status.value,
                record.parent_execution_id,
                _decode(serializer, record.input),
                _decode(serializer, record.output),
            )
    runs = read_runs(store.runs_directory)
    counts = tally(
        audit=audit,
        runs=runs,
        executions=executions,
        acknowledged=acknowledged,
        output_is_right=output_is_right,
        unlogged_task_ids={"chaos_sequence"},
        expected_to_fail=expected_to_fail,
    )
    return Evidence(audit, runs, executions, counts)


def _decode(serializer: JsonSerializer, text: str | None) -> Any:
    return None if text is None else serializer.deserialize(text)


async def unfinished(storage: DurableStorage, ids: list[str]) -> int:
    """How many of ``ids`` are not finished yet."""
    finished = await storage.find_finished(ids)
    return len(ids) - len(finished)
