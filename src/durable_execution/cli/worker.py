"""``durable-execution worker APP``: run the application's executor until SIGTERM or SIGINT,
then shut down gracefully (a second signal stops at once); ``--processes N`` runs N of them
under a supervisor (:mod:`.supervisor`)."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from durable_execution.cli.common import (
    AppOption,
    StorageOption,
    configure_logging,
    fail,
    load_executor,
    open_storage,
    run,
)
from durable_execution.cli.stopping import StopRequests
from durable_execution.executor.executor import DurableExecutor

__all__ = ["WorkerSettings", "register", "serve"]

logger = logging.getLogger("durable_execution.worker")


@dataclass(frozen=True)
class WorkerSettings:
    """The worker's flags: what they override in the application's executor."""

    shutdown_timeout_s: float
    max_concurrent: int | None = None
    batch_size: int | None = None
    threads: int | None = None

    def executor_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"shutdown_timeout_ms": round(self.shutdown_timeout_s * 1000)}
        if self.max_concurrent is not None:
            options["max_concurrent_task_executions"] = self.max_concurrent
        if self.batch_size is not None:
            options["max_task_executions_per_batch"] = self.batch_size
        if self.threads is not None:
            options["max_task_threads"] = self.threads
        return options

    def flags(self) -> list[str]:
        """These settings as the command's flags (the supervisor passes them on)."""
        flags = ["--shutdown-timeout", repr(self.shutdown_timeout_s)]
        if self.max_concurrent is not None:
            flags += ["--max-concurrent", str(self.max_concurrent)]
        if self.batch_size is not None:
            flags += ["--batch-size", str(self.batch_size)]
        if self.threads is not None:
            flags += ["--threads", str(self.threads)]
        return flags


def worker(
    app: AppOption,
    processes: Annotated[
        int,
        typer.Option(
            min=1, help="Run this many worker processes under a supervisor (CPU-bound tasks)."
        ),
    ] = 1,
    max_concurrent: Annotated[
        int | None,
        typer.Option(help="Executions run at once per process (max_concurrent_task_executions)."),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            help="Sync tasks run at once per process, each in a thread (max_task_threads); "
            "for CPU-bound tasks, 1-2 with --processes set to the cores."
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(help="Executions claimed per batch (max_task_executions_per_batch)."),
    ] = None,
    shutdown_timeout: Annotated[
        float,
        typer.Option(
            min=0,
            help="Seconds running executions get to finish after SIGTERM/SIGINT; those still "
            "running then are given back for another worker.",
        ),
    ] = 10.0,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    storage: StorageOption = None,
) -> None:
    """Run the application's executor until SIGTERM or SIGINT, then shut down gracefully
    (a second signal stops at once)."""
    configure_logging(log_level)
    settings = WorkerSettings(shutdown_timeout, max_concurrent, batch_size, threads)
    if processes > 1:
        from durable_execution.cli.supervisor import supervise

        raise typer.Exit(run(supervise(app, processes, settings, storage)))
    raise typer.Exit(run(serve(app, settings, storage)))


async def serve(spec: str, settings: WorkerSettings, url: str | None) -> int:
    """Load the application, run its executor until a signal, shut it down; the exit code."""
    executor = load_executor(spec)
    try:
        executor.set_options(**settings.executor_options())
    except ValueError as exc:
        fail(str(exc))
    if url:
        executor.use_storage(open_storage(url))
    stop = StopRequests()
    stop.install()
    try:
        started = time.monotonic()
        await executor.start()
        logger.info("worker started: %s", describe(executor))
        reason = await stop.wait()
        logger.info(
            "stopping (%s): waiting up to %ss for running executions",
            reason,
            settings.shutdown_timeout_s,
        )
        await executor.shutdown()
        logger.info("worker stopped after %.1fs", time.monotonic() - started)
    finally:
        stop.uninstall()
        if url:
            await executor.storage.close()
    return 0


def describe(executor: DurableExecutor) -> str:
    """The start line: the storage (its repr holds no password), the tasks and the limits."""
    options = executor.options
    tasks = sorted(executor.registered_tasks)
    shown = ", ".join(tasks[:20]) + (f", … ({len(tasks)} in all)" if len(tasks) > 20 else "")
    return (
        f"pid={os.getpid()} storage={executor.storage!r} tasks=[{shown}] "
        f"max_concurrent={options.max_concurrent_task_executions} "
        f"threads={options.max_task_threads} "
        f"batch_size={options.max_task_executions_per_batch} "
        f"shutdown_timeout={options.shutdown_timeout_ms / 1000:g}s "
        f"executor_id={executor.executor_id}"
    )


def register(app: typer.Typer) -> None:
    app.command()(worker)
