"""What the subcommands share: errors with an exit code, loading the application's executor,
choosing the storage, and running a coroutine with errors reported on one line."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import sys
from collections.abc import Coroutine
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from durable_execution.cli import exit_codes
from durable_execution.executor.executor import DurableExecutor
from durable_execution.storage.protocol import DurableStorage
from durable_execution.storage.url import STORAGE_URL_ENV, storage_from_url

__all__ = [
    "AppOption",
    "CommandError",
    "StorageOption",
    "configure_logging",
    "fail",
    "load_executor",
    "open_storage",
    "run",
    "stderr",
    "stdout",
]

T = TypeVar("T")

stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)

StorageOption = Annotated[
    str | None,
    typer.Option(
        "--storage",
        envvar=STORAGE_URL_ENV,
        show_envvar=True,
        help="The storage URL (sqlite:///path.db, postgresql://...); without it, the "
        "application's own storage (the SQLite file ./durable_execution.db for commands "
        "that load no application).",
    ),
]

AppOption = Annotated[
    str,
    typer.Argument(
        metavar="MODULE:ATTRIBUTE",
        help="Where the application's DurableExecutor is, e.g. myapp.tasks:executor.",
    ),
]


class CommandError(Exception):
    """A failure the command reports on one line, exiting with ``code``."""

    def __init__(self, message: str, code: int = exit_codes.USAGE) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = exit_codes.USAGE) -> NoReturn:
    raise CommandError(message, code)


def load_executor(spec: str) -> DurableExecutor:
    """The executor at ``module:attribute`` (a dotted attribute path), imported with the
    working directory on ``sys.path`` as ``python -m`` would have it."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        fail(f"Invalid application {spec!r}: expected MODULE:ATTRIBUTE, e.g. myapp.tasks:executor")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        fail(f"Cannot import the application module {module_name!r}: {exc}")
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            fail(f"{module_name!r} has no attribute {attribute!r}")
    if not isinstance(target, DurableExecutor):
        fail(f"{spec} is {type(target).__name__}, not a DurableExecutor")
    return target


def open_storage(url: str | None) -> DurableStorage:
    """The storage ``url`` names (``$DURABLE_EXECUTION_STORAGE_URL`` is read by the option);
    the default SQLite file without one."""
    try:
        if url:
            return storage_from_url(url)
        from durable_execution.storage.url import default_storage

        return default_storage()
    except (ValueError, TypeError) as exc:
        fail(str(exc))


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main``; a :class:`CommandError` or any other error is printed on one line and
    exits with its code (3 for an unexpected error)."""
    try:
        return asyncio.run(main)
    except KeyboardInterrupt:  # Ctrl-C in enqueue --wait: the execution carries on
        raise typer.Exit(130) from None
    except CommandError as exc:
        stderr.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(exc.code) from None
    except Exception as exc:
        stderr.print(f"[bold red]error:[/] {type(exc).__name__}: {escape(str(exc))}")
        raise typer.Exit(exit_codes.FAILED) from None


def configure_logging(level: str) -> None:
    """Log lines on stderr, one per event, plain (journald and container logs add their
    own timestamps, but a terminal has none: keep ours)."""
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
