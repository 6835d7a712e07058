"""Helpers of the tests that run worker processes on one shared store (a SQLite file, a
PostgreSQL schema); their fixtures (``store``, ``start_worker``, ``controller``) are in
``conftest.py``."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from .backends import BACKENDS

__all__ = [
    "PROCESS_BACKENDS",
    "WORKERS",
    "SharedStore",
    "StartWorker",
    "pause_outside_a_transaction",
    "read_lines",
    "write_locked",
]

WORKERS = Path(__file__).parent / "workers"

StartWorker = Callable[..., Awaitable[asyncio.subprocess.Process]]


PROCESS_BACKENDS = [name for name in ("sqlite", "postgres") if name in BACKENDS]


@dataclass
class SharedStore:
    """Where the processes of a test meet: a storage URL every process can open."""

    backend: str
    url: str
    sqlite_path: Path | None = None

    async def pause(self, pid: int) -> None:
        """SIGSTOP a worker (on SQLite, between two of its write transactions)."""
        if self.sqlite_path is not None:
            await pause_outside_a_transaction(pid, self.sqlite_path)
        else:
            os.kill(pid, signal.SIGSTOP)


def write_locked(path: Path) -> bool:
    """Whether some connection holds the file's write lock right now."""
    conn = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        conn.close()


async def pause_outside_a_transaction(pid: int, path: Path) -> None:
    """SIGSTOP ``pid`` at a moment it holds no write lock.

    A process paused inside a write transaction stalls every SQLite writer until it resumes
    (a limit of SQLite's single-writer design, see docs/design.md); this test is about
    fencing, so it pauses the worker between two transactions.
    """
    for _ in range(200):
        os.kill(pid, signal.SIGSTOP)
        if not write_locked(path):
            return
        os.kill(pid, signal.SIGCONT)
        await asyncio.sleep(0.001)  # let it finish its transaction, then try again
    raise AssertionError("the worker never left its write transaction")


def read_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []
