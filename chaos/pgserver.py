"""A throwaway PostgreSQL server of the suite's own, to restart at will.

``initdb`` and ``pg_ctl`` from the installed binaries (``$CHAOS_PG_BIN``, else the newest
``/usr/lib/postgresql/*/bin``, else ``initdb`` on the ``PATH``) make a cluster in a new
temporary directory and start it on a free port of 127.0.0.1 (its socket in that directory
too): never the shared server. PostgreSQL refuses to run as root, so as root the cluster
belongs to the ``postgres`` user and the commands run as it. Stopped and deleted at the end,
whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import shutil
import socket
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PostgresServer", "PostgresUnavailable", "find_binaries", "throwaway_postgres"]

_COMMAND_TIMEOUT_S = 60.0


class PostgresUnavailable(Exception):
    """The PostgreSQL binaries (or a user to run them as) are missing: skip, saying why."""


def find_binaries() -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``."""
    candidates = [os.environ.get("CHAOS_PG_BIN", "")]
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True
    )
    found = shutil.which("initdb")
    candidates.append(os.path.dirname(os.path.realpath(found)) if found else "")
    for candidate in candidates:
        if candidate and all(
            os.access(os.path.join(candidate, name), os.X_OK)
            for name in ("initdb", "pg_ctl", "postgres")
        ):
            return Path(candidate)
    raise PostgresUnavailable(
        "no PostgreSQL binaries (initdb, pg_ctl, postgres) found: set CHAOS_PG_BIN, or install "
        "PostgreSQL's server package"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    """One cluster: its binaries, data directory, port, and the user it runs as."""

    binaries: Path
    directory: Path
    port: int
    user: str | None  # None: the current user

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def data(self) -> Path:
        return self.directory / "data"

    async def _run(self, *args: str) -> None:
        process = await asyncio.create_subprocess_exec(
            *args,
            user=self.user,
            cwd=self.directory,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            _, stderr = await asyncio.wait_for(process.communicate(), _COMMAND_TIMEOUT_S)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise RuntimeError(f"{args[0]} took more than {_COMMAND_TIMEOUT_S} s") from None
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {stderr.decode().strip()}")

    async def initdb(self) -> None:
        await self._run(
            str(self.binaries / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
            "-E", "UTF8", "--no-sync",
        )  # fmt: skip

    async def start(self) -> float:
        """Start the server and wait until it accepts connections; the unix time it did."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.directory} -c max_connections=100"
        )
        await self._run(
            str(self.binaries / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.directory / "server.log"), "-w", "-t", "30", "start",
        )  # fmt: skip
        return time.time()

    async def stop(self, mode: str = "immediate") -> None:
        """Stop the server (``immediate``: at once, like a crash; recovery at next start)."""
        await self._run(
            str(self.binaries / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "30",
            "stop",
        )  # fmt: skip

    async def restart_immediately(self) -> tuple[float, float]:
        """An immediate shutdown, then a start at once: ``(stopped at, ready at)``, unix times."""
        stopping = time.time()
        await self.stop("immediate")
        return stopping, await self.start()


@contextlib.asynccontextmanager
async def throwaway_postgres() -> AsyncIterator[PostgresServer]:
    """A new cluster, started; stopped and deleted when the block ends."""
    binaries = find_binaries()
    user = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailable("running as root and no 'postgres' user to run as") from None
        user = owner.pw_name
    directory = Path(tempfile.mkdtemp(prefix="chaos-pg-"))
    try:
        if user is not None:
            os.chown(directory, owner.pw_uid, owner.pw_gid)
        server = PostgresServer(binaries, directory, free_port(), user)
        await server.initdb()
        await server.start()
        try:
            yield server
        finally:
            with contextlib.suppress(RuntimeError, OSError):
                await server.stop("immediate")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
