"""``durable-execution enqueue APP TASK_ID``: store an execution; with ``--wait``, wait for
it to finish and print it (the exit code says whether it completed)."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich.markup import escape

from durable_execution.cli import exit_codes
from durable_execution.cli.common import (
    AppOption,
    CommandError,
    StorageOption,
    fail,
    load_executor,
    open_storage,
    run,
    stderr,
    stdout,
)
from durable_execution.execution import DurableTaskExecution
from durable_execution.executor.executor import DurableExecutor
from durable_execution.handle import DurableTaskHandle
from durable_execution.status import DurableTaskExecutionStatus

__all__ = ["execution_summary", "register", "wait_or_give_up"]


def enqueue(
    app: AppOption,
    task_id: Annotated[str, typer.Argument(help="The id of the task to run.")],
    input: Annotated[str | None, typer.Option("--input", "-i", help="The input, as JSON.")] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait until it finishes and print the execution.")
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option(help="With --wait: give up after this many seconds (exit code 4)."),
    ] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="A second enqueue with this key returns the first one.")
    ] = None,
    priority: Annotated[int, typer.Option(help="Higher runs first.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    storage: StorageOption = None,
) -> None:
    """Enqueue an execution of TASK_ID; exit code 0 when it completed (with --wait), 1 when
    it finished otherwise, 2 for a usage error, 3 when the command failed, 4 on --timeout."""
    value = _parse_input(input)
    code = run(
        _enqueue(app, task_id, value, wait, timeout, idempotency_key, priority, as_json, storage)
    )
    raise typer.Exit(code)


def _parse_input(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint="--input") from None


async def _enqueue(
    spec: str,
    task_id: str,
    value: Any,
    wait: bool,
    timeout: float | None,
    idempotency_key: str | None,
    priority: int,
    as_json: bool,
    url: str | None,
) -> int:
    executor = load_executor(spec)
    task = executor.registered_tasks.get(task_id)
    if task is None:
        known = ", ".join(sorted(executor.registered_tasks)) or "none"
        fail(f"No task {task_id!r} in {spec} (its tasks: {known})")
    if url:
        executor.use_storage(open_storage(url))
    try:
        return await _enqueue_on(
            executor, task, value, wait, timeout, idempotency_key, priority, as_json
        )
    finally:
        await executor.shutdown()
        if url:
            await executor.storage.close()


async def _enqueue_on(
    executor: DurableExecutor,
    task: Any,
    value: Any,
    wait: bool,
    timeout: float | None,
    idempotency_key: str | None,
    priority: int,
    as_json: bool,
) -> int:
    started = time.monotonic()
    try:
        handle = await executor.enqueue_task(
            task, value, idempotency_key=idempotency_key, priority=priority
        )
    except ValueError as exc:  # an invalid input, or one over the size limit
        raise CommandError(str(exc)) from exc
    if not wait:
        if as_json:
            stdout.print_json(data={"execution_id": handle.execution_id})
        else:
            stdout.print(handle.execution_id)
        return exit_codes.COMPLETED
    announce = None if as_json else f"enqueued {handle.execution_id}"
    execution = await wait_or_give_up(handle, timeout, announce)
    if execution is None:
        return exit_codes.NOT_FINISHED
    summary = execution_summary(execution)
    if as_json:
        stdout.print_json(data=summary, default=str)
    else:
        _print_human(summary, time.monotonic() - started)
    if execution.status is DurableTaskExecutionStatus.COMPLETED:
        return exit_codes.COMPLETED
    return exit_codes.UNSUCCESSFUL


async def wait_or_give_up(
    handle: DurableTaskHandle[Any], timeout: float | None, announce: str | None
) -> DurableTaskExecution[Any] | None:
    """The execution of ``handle`` once finished, or ``None`` after ``timeout`` seconds (said
    on stderr); ``announce``, when given, goes to stderr first, followed by "waiting…"."""
    if announce is not None:
        stderr.print(f"{announce}; waiting…")
    try:
        return await handle.wait_and_get_execution(timeout=timeout)
    except TimeoutError:
        stderr.print(f"{handle.execution_id} not finished after {timeout}s")
        return None


def execution_summary(execution: DurableTaskExecution[Any]) -> dict[str, Any]:
    """What ``enqueue --wait --json`` prints: the id, status, output and error."""
    return {
        "execution_id": execution.execution_id,
        "task_id": execution.task_id,
        "status": execution.status.value,
        "output": execution.output,
        "error": execution.error.to_dict() if execution.error is not None else None,
    }


def _print_human(summary: dict[str, Any], seconds: float) -> None:
    status = summary["status"]
    colour = "green" if status == DurableTaskExecutionStatus.COMPLETED.value else "red"
    stderr.print(f"[{colour}]{status}[/] after {seconds:.2f}s")
    if summary["error"] is not None:
        error = summary["error"]
        stderr.print(f"[red]{error['error_type']}[/]: {escape(error['message'])}")
    if summary["output"] is not None:
        stdout.print_json(data=summary["output"], default=str)


def register(app: typer.Typer) -> None:
    app.command()(enqueue)
