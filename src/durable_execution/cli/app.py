"""The ``durable-execution`` application: the root options and the subcommands.

Each subcommand lives in its own module and registers itself through ``register(app)``;
a new one (``ls``, ``show``, ``retry``, ``purge``, ``stats``...) is one module and one line in
:data:`COMMANDS`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from durable_execution.cli import (
    cancel,
    enqueue,
    listing,
    migrate,
    purge,
    retry,
    show,
    stats,
    wakeup,
    worker,
)
from durable_execution.cli.common import stdout

__all__ = ["COMMANDS", "build_app"]

COMMANDS = (worker, enqueue, listing, show, stats, cancel, retry, wakeup, purge, migrate)


def _version(value: bool) -> None:
    if value:
        from durable_execution import __version__

        stdout.print(f"durable-execution {__version__}")
        raise typer.Exit()


def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Run and operate durable executions: workers, enqueues, listings, trees, counts, the
    schema."""


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="durable-execution",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_root)
    for command in COMMANDS:
        command.register(app)
    return app
