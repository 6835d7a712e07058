"""``durable-execution cancel EXECUTION_ID``: cancel an execution and its unfinished
descendants (a running one is stopped by whichever worker runs it)."""

from __future__ import annotations

from typing import Annotated

import typer

from durable_execution.cli import exit_codes
from durable_execution.cli.common import StorageOption, run, stderr, stdout
from durable_execution.cli.operator import operator_executor
from durable_execution.handle import DurableTaskHandle
from durable_execution.status import DurableTaskExecutionStatus

__all__ = ["register"]

IdArgument = Annotated[str, typer.Argument(metavar="EXECUTION_ID", help="The execution's id.")]


def cancel(
    execution_id: IdArgument,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    storage: StorageOption = None,
) -> None:
    """Cancel EXECUTION_ID and its unfinished descendants; exit code 0 when it is cancelled
    (now or before), 6 when it had already finished otherwise (left as it is), 5 when no
    execution has that id."""
    raise typer.Exit(run(_cancel(execution_id, as_json, storage)))


async def _cancel(execution_id: str, as_json: bool, url: str | None) -> int:
    async with operator_executor(url) as executor:
        before = await executor.get_execution(execution_id)
        await DurableTaskHandle(executor, before.task_id, execution_id).cancel()
        after = await executor.get_execution(execution_id)
    cancelled = after.status is DurableTaskExecutionStatus.CANCELLED
    if as_json:
        stdout.print_json(
            data={
                "execution_id": execution_id,
                "task_id": after.task_id,
                "status": after.status.value,
                "cancelled_now": cancelled and not before.is_finished,
            }
        )
    elif cancelled:
        stdout.print(f"cancelled {execution_id}")
    else:
        stderr.print(f"{execution_id} had already finished: {after.status.value}")
    return exit_codes.COMPLETED if cancelled else exit_codes.REFUSED


def register(app: typer.Typer) -> None:
    app.command()(cancel)
