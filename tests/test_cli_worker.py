"""``durable-execution worker`` as a user runs it: a subprocess on a real SQLite file or
PostgreSQL schema, stopped by real signals; ``enqueue --wait`` against it."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from durable_execution import DurableExecutor, DurableTaskExecutionStatus

from .command import APP, Command, run_command, start_command
from .helpers import wait_until
from .processes import SharedStore

pytestmark = pytest.mark.slow

S = DurableTaskExecutionStatus
STARTED = r"worker started: pid=(\d+)"


async def start_worker(store: SharedStore, *flags: str) -> Command:
    worker = await start_command("worker", APP, *flags, storage_url=store.url)
    await worker.expect(STARTED)
    return worker


async def enqueue(store: SharedStore, task_id: str, input: object) -> str:
    result = await run_command(
        "enqueue", APP, task_id, "--input", json.dumps(input), "--json", storage_url=store.url
    )
    assert result.code == 0, result.stderr
    execution_id: str = json.loads(result.stdout)["execution_id"]
    return execution_id


async def test_enqueue_wait_prints_the_result_and_its_exit_code_tells_success(
    store: SharedStore,
) -> None:
    worker = await start_worker(store, "--max-concurrent", "7", "--threads", "3")
    assert "max_concurrent=7 threads=3" in worker.stderr_lines[-1]  # the flags override the app's
    assert "tasks=[add, fail," in worker.stderr_lines[-1]
    assert "password" not in worker.stderr_lines[-1]
    done = await run_command(
        "enqueue",
        APP,
        "add",
        "--input",
        '{"a": 2, "b": 3}',
        "--wait",
        "--json",
        "--storage",
        store.url,
    )
    assert done.code == 0, done.stderr
    assert json.loads(done.stdout) | {"execution_id": None} == {
        "execution_id": None,
        "task_id": "add",
        "status": "completed",
        "output": 5,
        "error": None,
    }
    failed = await run_command(
        "enqueue", APP, "fail", "--input", "7", "--wait", "--json", storage_url=store.url
    )
    assert failed.code == 1, failed.stderr
    summary = json.loads(failed.stdout)
    assert summary["status"] == "failed"
    assert summary["error"]["message"] == "failing on purpose with 7"
    worker.process.send_signal(signal.SIGTERM)
    assert await worker.exit_code() == 0
    assert any("worker stopped after" in line for line in worker.stderr_lines)


async def test_sigterm_lets_runs_finish_and_completes_their_parents(
    store: SharedStore, controller: DurableExecutor, tmp_path: Path
) -> None:
    worker = await start_worker(store)
    started = tmp_path / "started"
    root_id = await enqueue(store, "tree", str(started))
    await wait_until(started.exists, timeout=20, message="the child to start")
    worker.process.send_signal(signal.SIGTERM)
    assert await worker.exit_code() == 0
    # The child saw the shutdown and completed; its parent completed before the worker
    # exited, not at the next start.
    root = await controller.get_execution(root_id)
    assert root.status is S.COMPLETED, root
    outputs = [c["output"] for c in root.output["children_outputs"]]
    assert outputs == ["stopped gracefully", 3]


async def test_a_run_still_going_after_the_shutdown_timeout_is_given_back(
    store: SharedStore, controller: DurableExecutor, tmp_path: Path
) -> None:
    worker = await start_worker(store, "--shutdown-timeout", "0.2")
    started = tmp_path / "started"
    execution_id = await enqueue(store, "forever", str(started))
    await wait_until(started.exists, timeout=20, message="the run to start")
    worker.process.send_signal(signal.SIGINT)
    assert await worker.exit_code() == 0
    execution = await controller.get_execution(execution_id)
    assert execution.status is S.READY  # released: the next worker runs it at once


async def test_a_second_signal_stops_at_once(store: SharedStore, tmp_path: Path) -> None:
    worker = await start_worker(store, "--shutdown-timeout", "60")
    started = tmp_path / "started"
    await enqueue(store, "forever", str(started))
    await wait_until(started.exists, timeout=20, message="the run to start")
    worker.process.send_signal(signal.SIGTERM)
    await worker.expect("stopping \\(SIGTERM\\)")
    worker.process.send_signal(signal.SIGTERM)
    assert await worker.exit_code(timeout=10) == 128 + signal.SIGTERM


async def test_processes_restarts_a_killed_worker_and_stops_them_all(store: SharedStore) -> None:
    supervisor = await start_command("worker", APP, "--processes", "2", storage_url=store.url)
    first = {int((await supervisor.expect(r"worker (\d) started")).group(1)) for _ in range(2)}
    assert first == {1, 2}
    pids = _worker_pids(supervisor)
    for _ in range(2):
        await supervisor.expect(STARTED)  # both loaded the app and started
    victim = pids[1]
    os.kill(victim, signal.SIGKILL)
    await supervisor.expect(rf"worker 1 \(pid {victim}\) exited with -9; restarting")
    restarted = int((await supervisor.expect(r"worker 1 started \(pid (\d+)\)")).group(1))
    assert restarted != victim
    await supervisor.expect(STARTED)
    # Both run tasks: a task reports its process, and the restarted one serves too.
    result = await run_command("enqueue", APP, "pid", "--wait", "--json", storage_url=store.url)
    assert json.loads(result.stdout)["output"] in {restarted, pids[2]}
    supervisor.process.send_signal(signal.SIGTERM)
    assert await supervisor.exit_code() == 0
    assert sum("worker stopped after" in line for line in supervisor.stderr_lines) == 2
    for pid in (restarted, pids[2]):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def _worker_pids(command: Command) -> dict[int, int]:
    import re

    pids = {}
    for line in command.stderr_lines:
        match = re.search(r"worker (\d) started \(pid (\d+)\)", line)
        if match:
            pids[int(match.group(1))] = int(match.group(2))
    return pids


async def test_workers_stop_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'orphans.db'}"
    supervisor = await start_command("worker", APP, "--processes", "2", storage_url=url)
    for _ in range(2):
        await supervisor.expect(STARTED)
    supervisor.process.kill()
    # The workers share the supervisor's stderr: they say why they stop, then stop.
    for _ in range(2):
        await supervisor.expect("worker stopped after")
    assert await supervisor.exit_code() == -signal.SIGKILL  # stderr closed: all are gone
    assert sum("the supervisor is gone" in line for line in supervisor.stderr_lines) == 2


async def test_a_sigterm_to_every_process_stops_the_supervised_workers_gracefully(
    store: SharedStore, controller: DurableExecutor, tmp_path: Path
) -> None:
    # As systemd's default KillMode does: the supervisor forwards the signal, and each worker
    # gets it directly too; counted twice, it would stop the workers at once.
    supervisor = await start_command("worker", APP, "--processes", "2", storage_url=store.url)
    for _ in range(2):
        await supervisor.expect(STARTED)
    started = tmp_path / "started"
    execution_id = await enqueue(store, "until_shutdown", str(started))
    await wait_until(started.exists, timeout=20, message="the run to start")
    for pid in (supervisor.process.pid, *_worker_pids(supervisor).values()):
        os.kill(pid, signal.SIGTERM)
    assert await supervisor.exit_code() == 0
    assert sum("worker stopped after" in line for line in supervisor.stderr_lines) == 2
    execution = await controller.get_execution(execution_id)
    assert (execution.status, execution.output) == (S.COMPLETED, "stopped gracefully")


async def test_a_second_signal_to_the_supervisor_stops_the_workers_at_once(
    store: SharedStore, tmp_path: Path
) -> None:
    supervisor = await start_command(
        "worker", APP, "--processes", "2", "--shutdown-timeout", "60", storage_url=store.url
    )
    for _ in range(2):
        await supervisor.expect(STARTED)
    started = tmp_path / "started"
    await enqueue(store, "forever", str(started))
    await wait_until(started.exists, timeout=20, message="the run to start")
    supervisor.process.send_signal(signal.SIGTERM)
    await supervisor.expect("stopping \\(stop from the supervisor\\)")
    supervisor.process.send_signal(signal.SIGTERM)
    assert await supervisor.exit_code(timeout=10) == 0
    assert any("the supervisor said again: stopping at once" in x for x in supervisor.stderr_lines)
