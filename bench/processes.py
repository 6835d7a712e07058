"""W1 and W7 with ``durable-execution worker --processes N``: tasks enqueued in a batch by
this process, run by the command's workers (one process, or N under its supervisor) on one
PostgreSQL schema or SQLite file → tasks/s.

- W1: no-op tasks (the engine's own cost);
- W7: CPU-bound tasks, each 5 ms of pure-Python work (counted in the CPU time of its thread,
  so the same work on any machine and in both runs), where one interpreter's lock is the
  limit and more processes should scale with the cores.

    python bench/processes.py {postgres,sqlite} [--workload w1|w7] [--processes 2] [--n 20000]
                              [--max-concurrent 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit, scratch_url

from durable_execution import DurableExecutor
from durable_execution.storage import storage_from_url

BENCH = Path(__file__).resolve().parent
CPU_TASK_MS = 5.0
DEFAULT_N = {"w1": 20_000, "w7": 1_000}


async def start_workers(url: str, processes: int, flags: list[str]) -> asyncio.subprocess.Process:
    """The command, once its workers have all started."""
    env = {
        **os.environ,
        "DURABLE_EXECUTION_STORAGE_URL": url,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(BENCH), os.environ.get("PYTHONPATH")])),
    }
    command = [sys.executable, "-m", "durable_execution", "worker", "processes_app:executor"]
    if processes > 1:
        command += ["--processes", str(processes)]
    command += flags
    process = await asyncio.create_subprocess_exec(
        *command, cwd=BENCH, env=env, stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    started = 0
    while started < processes:
        line = await asyncio.wait_for(process.stderr.readline(), 60)
        if not line:
            raise RuntimeError("the worker command exited before its workers started")
        started += b"worker started" in line
    asyncio.get_running_loop().create_task(_drain(process.stderr))
    return process


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


async def measure(
    url: str,
    workload: str,
    processes: int,
    n: int,
    max_concurrent: int | None,
    threads: int | None = None,
) -> dict[str, Any]:
    storage = storage_from_url(url)
    await storage.initialize()  # before the workers, so they do not race to create it
    controller = DurableExecutor(storage, background_process_interval_ms=20)
    task_id = "noop" if workload == "w1" else "cpu"
    task = controller.task(id=task_id, timeout_ms=60_000, run=lambda ctx, i: None)
    value = None if workload == "w1" else CPU_TASK_MS
    timing = {} if value is None else {"task_ms": CPU_TASK_MS}
    flags = ["--max-concurrent", str(max_concurrent)] if max_concurrent else []
    flags += ["--threads", str(threads)] if threads else []
    workers = await start_workers(url, processes, flags)
    try:
        start = time.perf_counter()
        own_cpu = _cpu_s(resource.RUSAGE_SELF)
        handles = await controller.enqueue_tasks([(task, value)] * n)
        await controller.wait_until_finished(handles, timeout=600)
        elapsed = time.perf_counter() - start
        own_cpu = _cpu_s(resource.RUSAGE_SELF) - own_cpu
        records = await storage.get_executions([h.execution_id for h in handles])
        shares = sorted(Counter(r.output for r in records).values(), reverse=True)
        # From the enqueue to the first run: how soon the workers heard of the work.
        first_start_ms = min(r.started_at_ms or 0 for r in records) - records[0].created_at_ms
    finally:
        workers.send_signal(signal.SIGTERM)
        await workers.wait()
        await controller.shutdown()
        await storage.close()
    # The CPU each side used (the workers' from their start to their exit): on two cores,
    # what this process uses while it waits is taken from the workers.
    cpu = {"controller_cpu_s": round(own_cpu, 2), "workers_cpu_s": _cpu_s(resource.RUSAGE_CHILDREN)}
    return (
        {
            "tasks": n,
            "processes": processes,
            "max_concurrent": max_concurrent,
            "threads": threads,
            "seconds": round(elapsed, 3),
            "tasks_per_s": round(n / elapsed),
            "per_process": shares,  # how many each worker process ran
            "first_start_ms": first_start_ms,
        }
        | timing
        | cpu
    )


def _cpu_s(who: int) -> float:
    usage = resource.getrusage(who)
    return round(usage.ru_utime + usage.ru_stime, 2)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("backend", choices=["sqlite", "postgres"])
    parser.add_argument("--workload", choices=["w1", "w7"], default="w1")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--n", type=int)
    parser.add_argument("--max-concurrent", type=int, help="the worker's flag (default: 1000)")
    parser.add_argument("--threads", type=int, help="the worker's flag (default: its own)")
    args = parser.parse_args()
    n = args.n or DEFAULT_N[args.workload]
    async with scratch_url(args.backend, "processes") as (url, _):
        result = await measure(
            url, args.workload, args.processes, n, args.max_concurrent, args.threads
        )
    workload = f"{args.workload}_command_{args.processes}procs"
    emit({"engine": "durable_execution", "backend": args.backend, "workload": workload} | result)


if __name__ == "__main__":
    asyncio.run(main())
