"""`make demo`: a real task tree on the embedded default storage (a SQLite file).

An order is processed by a parent task whose three children run in parallel (charge the card,
reserve the stock, prepare the parcel), then a completion task writes the receipt. The state
lives in ./durable_execution.db: run the demo twice and the second run finds the first order,
already finished, in the file. Interrupt it half-way (Ctrl-C) and run it again: the unfinished
tree is picked up where it stopped. It ends with what `durable-execution show` prints for the
order's tree.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import time
from typing import Any

from durable_execution import (
    ChildTask,
    DurableExecutor,
    DurableTaskExecution,
    DurableTaskHandle,
    TaskContext,
)

executor = (
    DurableExecutor()
)  # SQLite file ./durable_execution.db (or $DURABLE_EXECUTION_STORAGE_URL)


async def pause(low: float, high: float) -> None:
    await asyncio.sleep(random.uniform(low, high))


@executor.task(id="charge_card", timeout_ms=10_000, max_retry_attempts=3)
async def charge_card(ctx: TaskContext, order: dict[str, Any]) -> dict[str, Any]:
    await pause(0.2, 0.5)
    if ctx.attempt == 0 and order["amount"] > 100:
        raise RuntimeError("card network busy, will retry")  # a retryable failure, on purpose
    return {"charged": order["amount"], "attempts": ctx.attempt + 1}


@executor.task(id="reserve_stock", timeout_ms=10_000)
async def reserve_stock(ctx: TaskContext, order: dict[str, Any]) -> dict[str, Any]:
    await pause(0.4, 1.0)
    return {"reserved": order["items"]}


@executor.task(id="prepare_parcel", timeout_ms=10_000)
def prepare_parcel(ctx: TaskContext, order: dict[str, Any]) -> str:  # a plain function, in a thread
    time.sleep(random.uniform(0.5, 1.2))
    return f"parcel for {order['customer']} with {len(order['items'])} item(s)"


def write_receipt(ctx: TaskContext, value: Any) -> dict[str, Any]:
    payment, stock, parcel = (child.output for child in value.children_outputs)
    return {
        "order": value.input["order_id"],
        "customer": value.input["customer"],
        "charged": payment["charged"],
        "card_attempts": payment["attempts"],
        "reserved": stock["reserved"],
        "parcel": parcel,
    }


@executor.parent_task(
    id="process_order",
    timeout_ms=10_000,
    on_run_and_children_complete={
        "id": "write_receipt",
        "timeout_ms": 10_000,
        "run": write_receipt,
    },
)
def process_order(ctx: TaskContext, order: dict[str, Any]) -> dict[str, Any]:
    return {
        "output": {"accepted_at": time.strftime("%H:%M:%S")},
        "children": [
            ChildTask(charge_card, order),
            ChildTask(reserve_stock, order),
            ChildTask(prepare_parcel, order),
        ],
    }


async def show_progress(handle: DurableTaskHandle[Any]) -> DurableTaskExecution[Any]:
    """Print each status change of the order, its children and its completion task."""
    seen: dict[str, str] = {}
    while True:
        root = await handle.get_execution()
        related = [*root.child_execution_ids]
        if root.completion_execution_id is not None:
            related.append(root.completion_execution_id)
        executions = [await executor.get_execution(i) for i in related]
        for execution in (*executions, root):
            state = execution.status.value
            if execution.retry_attempts:
                state += f" (attempt {execution.retry_attempts + 1})"
            if execution.error is not None:
                state += f": {execution.error.message}"
            if seen.get(execution.execution_id) != state:
                seen[execution.execution_id] = state
                print(f"  {time.strftime('%H:%M:%S')}  {execution.task_id:<15} {state}")
        if root.is_finished:
            return root
        await asyncio.sleep(0.05)


async def main() -> str:
    """Process an order; the id of its root execution."""
    async with executor:
        first = {
            "order_id": "order-1",
            "customer": "Ada",
            "amount": 120,
            "items": ["keyboard", "mouse"],
        }
        handle = await executor.enqueue_task(process_order, first, idempotency_key="demo-order-1")
        earlier = await handle.get_execution()
        if earlier.is_finished:
            print(f"Found order-1 in {executor.storage!r}, finished at {earlier.finished_at:%c}")
            print(f"  from an earlier run, with receipt {earlier.output}")
            number = int(time.time())
            order = {
                "order_id": f"order-{number}",
                "customer": "Grace",
                "amount": 42,
                "items": ["notebook"],
            }
            handle = await executor.enqueue_task(process_order, order)
            print(f"Processing a new order, {order['order_id']} ({handle.execution_id}):")
        else:
            print(f"Processing order-1 ({handle.execution_id}) in {executor.storage!r}:")
        finished = await show_progress(handle)
        print(f"Result: {finished.status.value}")
        print(f"Receipt: {finished.output}")
        print("Run `make demo` again: the state above persists in durable_execution.db.")
        return handle.execution_id


def show_tree(execution_id: str) -> None:
    """Run the command an operator would, on the same storage (the default, or the one of
    $DURABLE_EXECUTION_STORAGE_URL, which the command reads too)."""
    print(f"\n$ durable-execution show {execution_id}")
    command = [sys.executable, "-m", "durable_execution", "show", execution_id]
    subprocess.run(command, check=True)


if __name__ == "__main__":
    show_tree(asyncio.run(main()))
