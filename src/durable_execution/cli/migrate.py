"""``durable-execution migrate``: create or migrate the schema, explicitly.

Executors do this themselves at start; a deployment whose application may not run DDL runs
this once per release instead (with a role that may), before starting the new workers.
Migrations only add, so the previous release's workers keep running meanwhile.
"""

from __future__ import annotations

import typer

from durable_execution.cli.common import StorageOption, open_storage, run, stdout

__all__ = ["register"]


def migrate(storage: StorageOption = None) -> None:
    """Create the tables, or apply the schema migrations they miss (idempotent)."""
    run(_migrate(storage))


async def _migrate(url: str | None) -> None:
    storage = open_storage(url)
    try:
        await storage.initialize()
    finally:
        await storage.close()
    stdout.print(f"schema up to date: {storage!r}")


def register(app: typer.Typer) -> None:
    app.command()(migrate)
