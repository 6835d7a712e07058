"""Running ``durable-execution`` as a user would: a subprocess (``python -m
durable_execution``), its output read line by line with deadlines."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["APP", "Command", "command_env", "run_command", "start_command"]

ROOT = Path(__file__).resolve().parents[1]
APP = "tests.apps.shop:executor"


def command_env(storage_url: str | None) -> dict[str, str]:
    """The environment a command runs in: the checkout on the path, the storage URL given
    (or none: the variable is removed)."""
    return _env(storage_url)


def _env(storage_url: str | None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    env.pop("DURABLE_EXECUTION_STORAGE_URL", None)
    if storage_url is not None:
        env["DURABLE_EXECUTION_STORAGE_URL"] = storage_url
    return env


@dataclass
class Command:
    """A running command; ``stderr_lines`` collects what :meth:`expect` read."""

    process: asyncio.subprocess.Process
    stderr_lines: list[str] = field(default_factory=list)

    async def expect(self, pattern: str, timeout: float = 20) -> re.Match[str]:
        """Read stderr until a line matches ``pattern``; its match."""
        assert self.process.stderr is not None

        async def read() -> re.Match[str]:
            assert self.process.stderr is not None
            while True:
                raw = await self.process.stderr.readline()
                if not raw:
                    raise AssertionError(f"no line matched {pattern!r}: {self.stderr_lines}")
                line = raw.decode()
                self.stderr_lines.append(line)
                match = re.search(pattern, line)
                if match:
                    return match

        return await asyncio.wait_for(read(), timeout)

    async def exit_code(self, timeout: float = 20) -> int:
        """Wait for the exit (the rest of stderr is collected)."""
        assert self.process.stderr is not None
        rest = await asyncio.wait_for(self.process.stderr.read(), timeout)
        self.stderr_lines += rest.decode().splitlines(keepends=True)
        return await asyncio.wait_for(self.process.wait(), timeout)


async def start_command(*args: str, storage_url: str | None = None) -> Command:
    """Start ``durable-execution ARGS`` (in the checkout's root, stdout ignored)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "durable_execution",
        *args,
        cwd=ROOT,
        env=_env(storage_url),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    return Command(process)


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


async def run_command(*args: str, storage_url: str | None = None, timeout: float = 30) -> Result:
    """Run ``durable-execution ARGS`` to its end."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "durable_execution",
        *args,
        cwd=ROOT,
        env=_env(storage_url),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())
