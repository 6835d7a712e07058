"""``durable-execution stats``: how many executions there are, by task and status, and the
backlog (the ready ones). ``--watch`` refreshes it until Ctrl-C, with the throughput (how
many finished per second since the previous refresh); ``--json`` prints one JSON object, or
one line of JSON per refresh with ``--watch``.

Counting reads every execution (through the primary key): on a table of millions of rows a
refresh takes a good part of a second, hence the interval."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from durable_execution.cli.common import StorageOption, run, stdout
from durable_execution.cli.observer import observer
from durable_execution.cli.views import print_wide, status_text
from durable_execution.executor.executor import DurableExecutor
from durable_execution.status import FINISHED_STATUSES
from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.inspection import ExecutionCount

__all__ = ["register"]


def stats(
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Refresh until Ctrl-C.")] = False,
    interval: Annotated[
        float, typer.Option(min=0.1, help="With --watch: seconds between refreshes.")
    ] = 2.0,
    as_json_output: Annotated[
        bool, typer.Option("--json", help="Print JSON (a line per refresh with --watch).")
    ] = False,
    storage: StorageOption = None,
) -> None:
    """Count executions by task and status, with the backlog; --watch to follow them."""
    try:
        run(_stats(storage, watch, interval, as_json_output))
    except typer.Exit as exit_:
        if watch and exit_.exit_code == 130:  # Ctrl-C ends a watch: not a failure
            raise typer.Exit(0) from None
        raise


class _Snapshot:
    """One reading of the counts, and what follows from it and the previous one."""

    def __init__(self, counts: list[ExecutionCount], previous: _Snapshot | None) -> None:
        self.at = time.monotonic()
        self.when = dt.datetime.now(dt.UTC)
        self.counts = counts
        self.by_status: dict[str, int] = {}
        for count in counts:
            assert count.status is not None
            self.by_status[count.status.value] = self.by_status.get(count.status.value, 0) + (
                count.count
            )
        self.finished = sum(self.by_status.get(s.value, 0) for s in FINISHED_STATUSES)
        self.per_second: float | None = None
        if previous is not None and self.at > previous.at:
            delta = self.finished - previous.finished  # < 0 after a purge: unknown
            if delta >= 0:
                self.per_second = delta / (self.at - previous.at)

    def as_json(self) -> dict[str, Any]:
        return {
            "at": self.when.isoformat(timespec="milliseconds"),
            "counts": [
                {
                    "task_id": c.task_id,
                    "status": c.status.value if c.status else None,
                    "count": c.count,
                }
                for c in self.counts
            ],
            "by_status": self.by_status,
            "total": sum(self.by_status.values()),
            "backlog": self.by_status.get(S.READY.value, 0),
            "finished_per_s": None if self.per_second is None else round(self.per_second, 1),
        }

    def render(self, watching: bool) -> Group:
        statuses = [s for s in S if s.value in self.by_status]
        table = Table(box=None, pad_edge=False, header_style="bold", show_footer=True)
        table.add_column("TASK", footer=Text("all", style="bold"))
        grid: dict[str, dict[str, int]] = {}
        for c in self.counts:
            assert c.task_id is not None
            assert c.status is not None
            grid.setdefault(c.task_id, {})[c.status.value] = c.count
        for status in statuses:
            table.add_column(
                status_text(status), justify="right", footer=str(self.by_status[status.value])
            )
        table.add_column("TOTAL", justify="right", footer=str(sum(self.by_status.values())))
        for task_id, row in sorted(grid.items()):
            cells = [str(row.get(s.value, "")) for s in statuses]
            table.add_row(task_id, *cells, str(sum(row.values())))
        summary = f"backlog (ready): {self.by_status.get(S.READY.value, 0)}"
        if watching:
            rate = "…" if self.per_second is None else f"{self.per_second:.1f}/s"
            summary += f"   finished: {rate}   at {self.when.astimezone():%H:%M:%S}"
        return Group(table if self.counts else Text("no executions"), Text(summary, style="dim"))


async def _read(executor: DurableExecutor, previous: _Snapshot | None) -> _Snapshot:
    return _Snapshot(await executor.count_executions(by=("task_id", "status")), previous)


async def _stats(url: str | None, watch: bool, interval: float, json_out: bool) -> None:
    async with observer(url) as executor:
        snapshot = await _read(executor, None)
        if not watch:
            if json_out:
                stdout.print_json(data=snapshot.as_json())
            else:
                print_wide(stdout, snapshot.render(False), 100)
            return
        if json_out:
            while True:
                print(json.dumps(snapshot.as_json()), flush=True)
                await asyncio.sleep(interval)
                snapshot = await _read(executor, snapshot)
        with Live(snapshot.render(True), console=stdout, auto_refresh=False) as live:
            while True:
                await asyncio.sleep(interval)
                snapshot = await _read(executor, snapshot)
                live.update(snapshot.render(True), refresh=True)


def register(app: typer.Typer) -> None:
    app.command()(stats)
