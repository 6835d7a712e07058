"""How the reading commands show executions: as JSON values for scripts, and as rich
renderables (coloured statuses, durations, a line of error) for people."""

from __future__ import annotations

import datetime as dt
from typing import Any

from rich.console import Console, RenderableType
from rich.markup import escape
from rich.text import Text

from durable_execution.execution import DurableTaskExecution
from durable_execution.status import DurableTaskExecutionStatus as S

__all__ = ["as_json", "duration", "error_line", "print_wide", "status_text", "when"]

_COLOURS = {
    S.COMPLETED: "green",
    S.READY: "cyan",
    S.RUNNING: "blue",
    S.SLEEPING: "magenta",
    S.WAITING_FOR_CHILDREN: "yellow",
    S.WAITING_FOR_ON_RUN_AND_CHILDREN_COMPLETE: "yellow",
    S.CANCELLED: "bright_black",
}
"""Each live or successful status's colour; the unsuccessful ones are red."""


def status_text(status: S) -> Text:
    """The status, coloured."""
    return Text(status.value, style=_COLOURS.get(status, "bold red"))


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="milliseconds")


def duration(execution: DurableTaskExecution[Any], now: dt.datetime | None = None) -> str:
    """How long it ran (started to finished, or to ``now`` while it runs); empty before it
    started."""
    if execution.started_at is None:
        return ""
    end = execution.finished_at or now or dt.datetime.now(dt.UTC)
    return seconds((end - execution.started_at).total_seconds())


def seconds(value: float) -> str:
    """``value`` seconds, short: ``0.012s``, ``1.5s``, ``2m03s``, ``1h02m``."""
    value = max(value, 0.0)
    if value < 10:
        return f"{value:.3f}s" if value < 1 else f"{value:.1f}s"
    if value < 60:
        return f"{value:.0f}s"
    minutes, secs = divmod(int(value), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def when(moment: dt.datetime) -> str:
    """A moment in local time, to the second."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def error_line(execution: DurableTaskExecution[Any], width: int = 0) -> str:
    """The error's type and message on one line (cut to ``width`` when not 0), escaped for
    rich markup; empty without error."""
    error = execution.error
    if error is None:
        return ""
    kind = error.exception_type or error.error_type.value
    line = " ".join(f"{kind}: {error.message}".split())
    if width and len(line) > width:
        line = line[: width - 1] + "…"
    return escape(line)


def as_json(execution: DurableTaskExecution[Any], *, traceback: bool = True) -> dict[str, Any]:
    """An execution as JSON values (times in ISO 8601, UTC; the error's traceback only with
    ``traceback``)."""
    error = execution.error
    run_seconds = None
    if execution.started_at is not None and execution.finished_at is not None:
        run_seconds = round((execution.finished_at - execution.started_at).total_seconds(), 3)
    return {
        "execution_id": execution.execution_id,
        "task_id": execution.task_id,
        "status": execution.status.value,
        "root_execution_id": execution.root_execution_id,
        "parent_execution_id": execution.parent_execution_id,
        "is_completion": execution.is_completion,
        "retry_attempts": execution.retry_attempts,
        "priority": execution.priority,
        "attributes": dict(execution.attributes),
        "input": execution.input,
        "output": execution.output,
        "error": None if error is None else error.to_dict(with_traceback=traceback),
        "created_at": _iso(execution.created_at),
        "started_at": _iso(execution.started_at),
        "finished_at": _iso(execution.finished_at),
        "duration_s": run_seconds,
    }


def print_wide(console: Console, renderable: RenderableType, width: int) -> None:
    """Print at least ``width`` columns wide (wider on a wider terminal; 200 to a file or a
    pipe, where rich would assume 80): ids and statuses are never cut."""
    previous = console.width
    console.width = max(previous, width) if console.is_terminal else max(width, 200)
    try:
        console.print(renderable, crop=False)
    finally:
        console.width = previous
