"""``durable-execution retry EXECUTION_ID``: resume a finished, unsuccessful root in place
(``executor.retry_execution``); with ``--wait``, wait for its new outcome."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from durable_execution.cli import exit_codes
from durable_execution.cli.cancel import IdArgument
from durable_execution.cli.common import CommandError, StorageOption, run, stderr, stdout
from durable_execution.cli.enqueue import execution_summary, wait_or_give_up
from durable_execution.cli.operator import operator_executor
from durable_execution.errors import ExecutionNotRetryableError
from durable_execution.execution import DurableTaskExecution
from durable_execution.status import DurableTaskExecutionStatus

__all__ = ["register"]


def retry(
    execution_id: IdArgument,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait until it finishes again and print it.")
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option(help="With --wait: give up after this many seconds (exit code 4)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    storage: StorageOption = None,
) -> None:
    """Retry the tree of EXECUTION_ID: what did not complete runs again, what completed is
    kept. Exit code 0 when retried (with --wait: when it then completed), 1 when it finished
    without completing again, 4 on --timeout, 5 when no execution has that id, 6 when it
    cannot be retried (a child, not finished, completed, still settling)."""
    raise typer.Exit(run(_retry(execution_id, wait, timeout, as_json, storage)))


async def _retry(
    execution_id: str, wait: bool, timeout: float | None, as_json: bool, url: str | None
) -> int:
    async with operator_executor(url) as executor:
        try:
            handle = await executor.retry_execution(execution_id)
        except ExecutionNotRetryableError as exc:
            if as_json:
                stdout.print_json(
                    data={"execution_id": execution_id, "retried": False, "reason": exc.reason}
                )
            raise CommandError(str(exc), exit_codes.REFUSED) from exc
        if not wait:
            if as_json:
                stdout.print_json(data={"execution_id": execution_id, "retried": True})
            else:
                stdout.print(f"retried {execution_id}")
            return exit_codes.COMPLETED
        announce = None if as_json else f"retried {execution_id}"
        execution = await wait_or_give_up(handle, timeout, announce)
        if execution is None:
            return exit_codes.NOT_FINISHED
    return _report(execution, as_json)


def _report(execution: DurableTaskExecution[Any], as_json: bool) -> int:
    """Print the execution as it finished again; its exit code."""
    summary = execution_summary(execution)
    if as_json:
        stdout.print_json(data={**summary, "retried": True}, default=str)
    else:
        colour = "green" if execution.status is DurableTaskExecutionStatus.COMPLETED else "red"
        stderr.print(f"[{colour}]{execution.status.value}[/]")
        if execution.error is not None:
            stderr.print(f"[red]{execution.error.error_type}[/]: {escape(execution.error.message)}")
        if summary["output"] is not None:
            stdout.print_json(data=summary["output"], default=str)
    if execution.status is DurableTaskExecutionStatus.COMPLETED:
        return exit_codes.COMPLETED
    return exit_codes.UNSUCCESSFUL


def register(app: typer.Typer) -> None:
    app.command()(retry)
