"""``durable-execution ls``: a page of executions, newest first, with filters; ``--json``
prints ``{"items": [...], "next_cursor": ...}`` for scripts, a table otherwise (and the
option for the next page on stderr).

The command's cursor is the executor's, prefixed with the time ``--since`` stood for on the
first page (``<ms>~<cursor>``): the next pages list from the same moment, not from one that
moved with the clock.
"""

from __future__ import annotations

import datetime as dt
import shlex
import time
from typing import Annotated, Any

import typer
from rich.table import Table

from durable_execution.cli.common import StorageOption, fail, run, stderr, stdout
from durable_execution.cli.durations import parse_duration
from durable_execution.cli.observer import observer
from durable_execution.cli.views import (
    as_json,
    duration,
    error_line,
    print_wide,
    status_text,
    when,
)
from durable_execution.status import DurableTaskExecutionStatus

__all__ = ["register"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_STATUSES = ", ".join(s.value for s in DurableTaskExecutionStatus)


def ls(
    status: Annotated[
        list[str] | None,
        typer.Option("--status", "-s", help=f"Only this status (repeat for several): {_STATUSES}."),
    ] = None,
    task: Annotated[
        list[str] | None, typer.Option("--task", "-t", help="Only this task (repeatable).")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Only those created within this long, e.g. 30m, 1h, 7d."),
    ] = None,
    roots: Annotated[bool, typer.Option("--roots", help="Only executions without parent.")] = False,
    parent: Annotated[str | None, typer.Option(help="Only the children of this execution.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many (1 to 1000).")] = 50,
    cursor: Annotated[
        str | None, typer.Option(help="Carry on where a page ended (its next_cursor).")
    ] = None,
    as_json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    storage: StorageOption = None,
) -> None:
    """List executions, newest first (exit code 2 for an invalid filter, 3 when the storage
    cannot be read)."""
    since_ms = None
    if since is not None:
        try:
            window = parse_duration(since)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--since") from None
        since_ms = int(time.time() * 1000) - window // dt.timedelta(milliseconds=1)
    inner = None
    if cursor is not None:
        prefix, sep, inner = cursor.partition("~")
        if not sep or (prefix and not prefix.isdigit()) or bool(prefix) != (since is not None):
            raise typer.BadParameter(
                "not a cursor of this listing (pass the same filters)", param_hint="--cursor"
            )
        since_ms = int(prefix) if prefix else None
    filters: dict[str, Any] = {
        "status": status or None,
        "task_id": task or None,
        "root_only": roots,
        "parent_execution_id": parent,
        "created_after": None if since_ms is None else _EPOCH + dt.timedelta(milliseconds=since_ms),
    }
    run(_ls(storage, filters, since_ms, limit, inner, as_json_output))


async def _ls(
    url: str | None,
    filters: dict[str, Any],
    since_ms: int | None,
    limit: int,
    cursor: str | None,
    json_out: bool,
) -> None:
    async with observer(url) as executor:
        try:
            page = await executor.list_executions(**filters, limit=limit, cursor=cursor)
        except ValueError as exc:
            fail(str(exc))
    next_cursor = None
    if page.next_cursor is not None:
        next_cursor = f"{'' if since_ms is None else since_ms}~{page.next_cursor}"
    if json_out:
        items = [as_json(e, traceback=False) for e in page.items]
        stdout.print_json(data={"items": items, "next_cursor": next_cursor}, default=str)
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("EXECUTION", "TASK", "STATUS", "CREATED", "RAN", "ERROR"):
        table.add_column(column, no_wrap=column != "ERROR", overflow="fold")
    now = dt.datetime.now(dt.UTC)
    for e in page.items:
        table.add_row(
            e.execution_id,
            e.task_id,
            status_text(e.status),
            when(e.created_at),
            duration(e, now),
            error_line(e, 80),
        )
    if page.items:
        print_wide(stdout, table, 140)
    else:
        stderr.print("no execution matches")
    if next_cursor is not None:
        stderr.print(f"more: add --cursor {shlex.quote(next_cursor)}")


def register(app: typer.Typer) -> None:
    app.command()(ls)
