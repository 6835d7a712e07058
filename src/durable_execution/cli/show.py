"""``durable-execution show EXECUTION_ID``: an execution and everything below it, as a tree
(statuses coloured, how long each ran, errors; their tracebacks with ``--traceback``), or as
nested JSON objects (``children``) with ``--json``. Exit code 5 when no execution has the
id."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.text import Text
from rich.tree import Tree

from durable_execution.cli import exit_codes
from durable_execution.cli.common import StorageOption, fail, run, stdout
from durable_execution.cli.observer import observer
from durable_execution.cli.views import as_json, duration, error_line, print_wide, status_text
from durable_execution.errors import DurableExecutionNotFoundError
from durable_execution.executor.inspection import ExecutionTreeNode

__all__ = ["register", "render_tree", "tree_json"]


def show(
    execution_id: Annotated[str, typer.Argument(help="The execution (usually a root).")],
    traceback: Annotated[
        bool, typer.Option("--traceback", help="Print the errors' tracebacks.")
    ] = False,
    as_json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    storage: StorageOption = None,
) -> None:
    """Show an execution and everything below it (exit code 5 when it does not exist)."""
    run(_show(storage, execution_id, traceback, as_json_output))


async def _show(url: str | None, execution_id: str, traceback: bool, json_out: bool) -> None:
    async with observer(url) as executor:
        try:
            tree = await executor.get_execution_tree(execution_id)
        except DurableExecutionNotFoundError:
            fail(f"No execution {execution_id}", exit_codes.NOT_FOUND)
    if json_out:
        stdout.print_json(data=tree_json(tree, traceback=traceback), default=str)
    else:
        print_wide(stdout, render_tree(tree, traceback=traceback), 120)


def tree_json(node: ExecutionTreeNode, *, traceback: bool) -> dict[str, Any]:
    """The tree as nested JSON objects: each execution's fields, then ``children``."""
    data = as_json(node.execution, traceback=traceback)
    data["children"] = [tree_json(child, traceback=traceback) for child in node.children]
    return data


def _label(node: ExecutionTreeNode, now: dt.datetime, traceback: bool) -> Any:
    e = node.execution
    line = Text.assemble((e.task_id, "bold"), " ", status_text(e.status))
    ran = duration(e, now)
    if ran:
        line.append(f" {ran}", style="dim")
    if e.retry_attempts:
        line.append(f" ({e.retry_attempts + 1} attempts)", style="dim")
    line.append(f"  {e.execution_id}", style="dim")
    error = error_line(e)
    if not error:
        return line
    parts: list[Any] = [line, Text.from_markup(f"[red]{error}[/]")]
    if traceback and e.error is not None and e.error.traceback:
        parts.append(Text(e.error.traceback.rstrip(), style="dim red"))
    return Group(*parts)


def render_tree(root: ExecutionTreeNode, *, traceback: bool = False) -> Tree:
    """The tree as a rich :class:`~rich.tree.Tree`."""
    now = dt.datetime.now(dt.UTC)

    def add(parent: Tree, node: ExecutionTreeNode) -> None:
        branch = parent.add(_label(node, now, traceback))
        for child in node.children:
            add(branch, child)

    tree = Tree(_label(root, now, traceback), guide_style="bright_black")
    for child in root.children:
        add(tree, child)
    return tree


def register(app: typer.Typer) -> None:
    app.command()(show)
