"""``durable-execution purge --older-than 30d``: delete the closed trees whose root finished
longer ago than that (``executor.purge_executions``), in bounded batches."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

import typer

from durable_execution.cli.common import StorageOption, run, stdout
from durable_execution.cli.operator import operator_executor
from durable_execution.executor.tree_methods import MAX_PURGE_LIMIT

__all__ = ["parse_age", "register"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
_AGE = re.compile(r"(\d+)([smhdw])")


def parse_age(text: str) -> dt.timedelta:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w``, or a sum of them (``1d12h``)."""
    text = text.strip().lower()
    parts = _AGE.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise typer.BadParameter(
            f"{text!r} is not an age: use a number and a unit (s, m, h, d, w), e.g. 30d",
            param_hint="--older-than",
        )
    return dt.timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in parts))


def purge(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            metavar="AGE",
            help="Purge the trees whose root finished longer ago than this (30d, 12h, 90m).",
        ),
    ],
    limit: Annotated[
        int,
        typer.Option(
            min=1, max=MAX_PURGE_LIMIT, help="Purge at most this many trees (root executions)."
        ),
    ] = 10_000,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be purged; delete nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    storage: StorageOption = None,
) -> None:
    """Delete whole closed trees (a root with all its descendants, every one finished and
    closed) whose root finished before AGE ago, freeing their idempotency keys. A running
    tree is never touched. Exit code 0 (also when nothing was old enough)."""
    age = parse_age(older_than)
    run(_purge(age, limit, dry_run, as_json, storage))


async def _purge(
    age: dt.timedelta, limit: int, dry_run: bool, as_json: bool, url: str | None
) -> None:
    before = dt.datetime.now(dt.UTC) - age
    async with operator_executor(url) as executor:
        result = await executor.purge_executions_in_batches(
            finished_before=before, limit=limit, dry_run=dry_run
        )
    if as_json:
        stdout.print_json(
            data={
                "trees": result.trees,
                "executions": result.executions,
                "batches": result.batches,
                "finished_before": before.isoformat(timespec="seconds"),
                "dry_run": dry_run,
            }
        )
        return
    verb = "would purge" if dry_run else "purged"
    stdout.print(
        f"{verb} {result.trees} tree(s), {result.executions} execution(s) in all, finished "
        f"before {before.isoformat(timespec='seconds')}"
    )


def register(app: typer.Typer) -> None:
    app.command()(purge)
