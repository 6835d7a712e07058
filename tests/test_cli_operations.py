"""``durable-execution cancel | retry | wakeup | purge`` as a user runs them: subprocesses on a
real SQLite file and a real PostgreSQL schema, no application code, ``--json`` parsed; the
executions are run by an executor in the test process (``controller``)."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from durable_execution import DurableExecutor, DurableTaskExecutionStatus, TaskContext

from .command import run_command
from .processes import SharedStore

pytestmark = pytest.mark.slow

S = DurableTaskExecutionStatus


async def _json(*args: str, store: SharedStore, code: int) -> Any:
    result = await run_command(*args, "--json", storage_url=store.url)
    assert result.code == code, (result.code, result.stdout, result.stderr)
    return json.loads(result.stdout)


async def test_retry(store: SharedStore, controller: DurableExecutor) -> None:
    broken = threading.Event()
    broken.set()

    def flaky(ctx: TaskContext, value: int) -> int:
        if broken.is_set():
            raise ValueError("broken")
        return value * 2

    task = controller.task(id="flaky", timeout_ms=10_000, run=flaky)
    await controller.start()
    handle = await controller.enqueue_task(task, 21)
    assert (await handle.wait_and_get_execution(timeout=20)).status is S.FAILED
    broken.clear()
    retried = await _json("retry", handle.execution_id, "--wait", store=store, code=0)
    assert (retried["status"], retried["output"], retried["retried"]) == ("completed", 42, True)
    refused = await _json("retry", handle.execution_id, store=store, code=6)
    assert refused == {"execution_id": handle.execution_id, "retried": False, "reason": "completed"}
    missing = await run_command("retry", "te_0000nothing", storage_url=store.url)
    assert missing.code == 5, missing.stderr
    assert "No execution te_0000nothing" in missing.stderr
    broken.set()
    again = await controller.enqueue_task(task, 1)
    await again.wait_and_get_execution(timeout=20)
    quick = await _json("retry", again.execution_id, store=store, code=0)
    assert quick == {"execution_id": again.execution_id, "retried": True}
    assert (await again.wait_and_get_execution(timeout=20)).retry_attempts == 1


async def test_cancel(store: SharedStore, controller: DurableExecutor) -> None:
    task = controller.task(id="later", timeout_ms=10_000, run=lambda ctx, i: i)
    await controller.start()
    later = await controller.enqueue_task(task, 1, delay_ms=3_600_000)
    done = await controller.enqueue_task(task, 2)
    await done.wait_and_get_execution(timeout=20)
    cancelled = await _json("cancel", later.execution_id, store=store, code=0)
    assert (cancelled["status"], cancelled["cancelled_now"]) == ("cancelled", True)
    assert (await later.get_execution()).status is S.CANCELLED
    again = await _json("cancel", later.execution_id, store=store, code=0)
    assert (again["status"], again["cancelled_now"]) == ("cancelled", False)
    refused = await _json("cancel", done.execution_id, store=store, code=6)
    assert refused["status"] == "completed"
    missing = await run_command("cancel", "te_0000nothing", storage_url=store.url)
    assert missing.code == 5, missing.stderr


async def test_wakeup(store: SharedStore, controller: DurableExecutor) -> None:
    approval = controller.sleeping_task(id="approval", timeout_ms=3_600_000)
    await controller.start()
    first = await controller.enqueue_task(approval, "order-1")
    second = await controller.enqueue_task(approval, "order-2")
    woken = await _json(
        "wakeup", "approval", "order-1", "--output", '{"by": "ada"}', store=store, code=0
    )
    assert (woken["status"], woken["output"], woken["woken"]) == ("completed", {"by": "ada"}, True)
    execution = await first.wait_and_get_execution(timeout=20)
    assert (execution.status, execution.output) == (S.COMPLETED, {"by": "ada"})
    late = await _json("wakeup", "approval", "order-1", "--failed", "no", store=store, code=6)
    assert (late["status"], late["woken"]) == ("completed", False)
    rejected = await _json("wakeup", "approval", "order-2", "--failed", "no", store=store, code=0)
    assert rejected["error"]["message"] == "no"
    assert (await second.wait_and_get_execution(timeout=20)).status is S.FAILED
    for args, code in [
        (("approval", "order-9", "--output", "1"), 5),
        (("approval", "order-1"), 2),  # neither --output nor --failed
        (("approval", "order-1", "--output", "1", "--failed", "x"), 2),
        (("approval", "order-1", "--output", "{not json"), 2),
    ]:
        result = await run_command("wakeup", *args, storage_url=store.url)
        assert result.code == code, (args, result.stderr)


async def test_purge(store: SharedStore, controller: DurableExecutor) -> None:
    task = controller.task(id="quick", timeout_ms=10_000, run=lambda ctx, i: i)
    waiting = controller.task(id="waits", timeout_ms=10_000, run=lambda ctx, i: i)
    await controller.start()
    handles = [await controller.enqueue_task(task, i, idempotency_key=f"k{i}") for i in range(3)]
    pending = await controller.enqueue_task(waiting, 0, delay_ms=3_600_000)
    await controller.wait_until_finished(handles, timeout=20)
    old = await _json("purge", "--older-than", "30d", store=store, code=0)
    assert (old["trees"], old["dry_run"]) == (0, False)
    dry = await _json("purge", "--older-than", "0s", "--dry-run", store=store, code=0)
    assert (dry["trees"], dry["executions"], dry["dry_run"]) == (3, 3, True)
    limited = await _json("purge", "--older-than", "0s", "--limit", "2", store=store, code=0)
    assert limited["trees"] == 2
    rest = await _json("purge", "--older-than", "0s", store=store, code=0)
    assert rest["trees"] == 1
    stored = await controller.storage.get_executions([h.execution_id for h in handles])
    assert stored == []
    assert (await pending.get_execution()).status is S.READY
    anew = await controller.enqueue_task(task, 0, idempotency_key="k0")
    assert anew.execution_id != handles[0].execution_id
    bad = await run_command("purge", "--older-than", "soon", storage_url=store.url)
    assert bad.code == 2, bad.stderr
