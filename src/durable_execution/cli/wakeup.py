"""``durable-execution wakeup TASK_ID UNIQUE_ID``: finish a sleeping execution from outside
(``executor.wakeup_sleeping_task_execution``), with an output or as failed."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from durable_execution.cli import exit_codes
from durable_execution.cli.common import StorageOption, fail, run, stderr, stdout
from durable_execution.cli.enqueue import execution_summary
from durable_execution.cli.operator import operator_executor
from durable_execution.errors import DurableExecutionError
from durable_execution.status import DurableTaskExecutionStatus

__all__ = ["register"]

_ANY_TIMEOUT_MS = 1  # a wake-up does not read the task's timeout: the storage keeps it


def wakeup(
    task_id: Annotated[str, typer.Argument(help="The sleeping task's id.")],
    unique_id: Annotated[str, typer.Argument(help="The sleeping execution's unique id.")],
    output: Annotated[
        str | None, typer.Option("--output", help="Complete it with this output (JSON).")
    ] = None,
    failed: Annotated[
        str | None,
        typer.Option("--failed", metavar="MESSAGE", help="Fail it, with this error message."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    storage: StorageOption = None,
) -> None:
    """Wake up the execution of TASK_ID sleeping under UNIQUE_ID: completed with --output,
    or failed with --failed (exactly one of them). Exit code 0 when it is finished as asked
    (by this call, or by an identical one before), 6 when it had finished otherwise (another
    wake-up, its timeout or a cancellation came first), 5 when no execution of the task has
    that unique id, 2 for a usage error."""
    if (output is None) == (failed is None):
        raise typer.BadParameter("give exactly one of --output and --failed")
    value: Any = None
    if output is not None:
        try:
            value = json.loads(output)
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"not JSON: {exc}", param_hint="--output") from None
    raise typer.Exit(run(_wakeup(task_id, unique_id, value, failed, as_json, storage)))


async def _wakeup(
    task_id: str,
    unique_id: str,
    value: Any,
    message: str | None,
    as_json: bool,
    url: str | None,
) -> int:
    async with operator_executor(url) as executor:
        try:
            task = executor.sleeping_task(id=task_id, timeout_ms=_ANY_TIMEOUT_MS)
        except ValueError as exc:
            fail(str(exc))
        if message is None:
            execution = await executor.wakeup_sleeping_task_execution(
                task, unique_id, status="completed", output=value
            )
            done = execution.status is DurableTaskExecutionStatus.COMPLETED
            done = done and execution.output == value
        else:
            error = DurableExecutionError(message, is_retryable=False)
            execution = await executor.wakeup_sleeping_task_execution(
                task, unique_id, status="failed", error=error
            )
            done = execution.status is DurableTaskExecutionStatus.FAILED
            done = done and execution.error is not None and execution.error.message == message
    if as_json:
        stdout.print_json(data={**execution_summary(execution), "woken": done}, default=str)
    elif done:
        stdout.print(f"{execution.status.value}: {execution.execution_id}")
    else:
        stderr.print(f"{execution.execution_id} no longer sleeps: it is {execution.status.value}")
    return exit_codes.COMPLETED if done else exit_codes.REFUSED


def register(app: typer.Typer) -> None:
    app.command()(wakeup)
