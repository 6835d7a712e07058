"""The run log: every run of a task, as the task itself records it.

Each worker process appends to a file of its own (``runs-<pid>.log`` in the scenario's run log
directory), one line per event, flushed at once so that a SIGKILL loses nothing written before
it::

    start <execution id> <pid> <unix time> <task id>
    end <execution id> <pid> <unix time> <task id>

``start`` is written when the run function begins, ``end`` just before it returns. The storage's
audit log says what was *recorded*; the run log says what *ran*: an execution started twice ran
twice (at least once), which is expected after a crash; recorded twice it must never be.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

__all__ = ["RunEntry", "RunLog", "read_runs"]


@dataclass(frozen=True, slots=True)
class RunEntry:
    """One line of a run log."""

    kind: str  # "start" or "end"
    execution_id: str
    pid: int
    at: float  # time.time() of the event
    task_id: str


class RunLog:
    """The writer a worker process gives its tasks: appends to ``<directory>/runs-<pid>.log``."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._lock = threading.Lock()  # sync tasks write from their threads
        self._file: TextIO | None = None
        self._pid = 0

    def record(self, kind: str, execution_id: str, task_id: str) -> None:
        """Append one event, flushed before returning."""
        line = f"{kind} {execution_id} {os.getpid()} {time.time():.6f} {task_id}\n"
        with self._lock:
            if self._file is None or self._pid != os.getpid():
                self._pid = os.getpid()
                path = self._directory / f"runs-{self._pid}.log"
                self._file = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
            self._file.write(line)  # line buffered: one write(2) per event

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def read_runs(directory: Path) -> list[RunEntry]:
    """Every event of every run log in ``directory``, in time order.

    A line cut short (a process killed in the middle of its write: not seen in practice, the
    lines are a single small write) is skipped.
    """
    entries: list[RunEntry] = []
    for path in sorted(directory.glob("runs-*.log")):
        for line in path.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) != 5 or parts[0] not in ("start", "end"):
                continue
            kind, execution_id, pid, at, task_id = parts
            entries.append(RunEntry(kind, execution_id, int(pid), float(at), task_id))
    entries.sort(key=lambda entry: entry.at)
    return entries
