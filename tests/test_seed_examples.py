"""Every example of the seed README, translated to Python, on every storage backend."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from durable_execution import (
    ChildTask,
    DurableExecutor,
    DurableTask,
    DurableTaskExecution,
    DurableTaskExecutionStatus,
    TaskContext,
)

COMPLETED = DurableTaskExecutionStatus.COMPLETED


async def run_to_end(
    executor: DurableExecutor, task: DurableTask[Any, Any], input: Any = None
) -> DurableTaskExecution[Any]:
    handle = await executor.enqueue_task(task, input)
    execution = await handle.wait_and_get_execution(timeout=20)
    assert execution.is_finished
    return execution


class FilePath(BaseModel):
    file_path: str


class Upload(BaseModel):
    file_path: str
    upload_url: str


async def test_upload_file_quickstart(executor: DurableExecutor) -> None:
    extract_file_title = executor.input_schema(FilePath).task(
        id="extractFileTitle",
        timeout_ms=30_000,
        run=lambda ctx, input: {"title": f"Title of {input.file_path}"},
    )

    async def check_path(input: dict[str, Any]) -> dict[str, Any]:
        if not input["file_path"].endswith(".txt"):
            raise ValueError("Invalid file path")
        return {"file_path": input["file_path"]}

    @executor.validate_input(check_path).task(id="summarizeFile", timeout_ms=30_000)
    async def summarize_file(ctx: TaskContext, input: dict[str, Any]) -> dict[str, str]:
        return {"summary": f"Summary of {input['file_path']}"}

    async def upload(ctx: TaskContext, input: Upload) -> dict[str, Any]:
        return {
            "output": {"file_path": input.file_path, "upload_url": input.upload_url, "size": 100},
            "children": [
                {"task": extract_file_title, "input": {"file_path": input.file_path}},
                {"task": summarize_file, "input": {"file_path": input.file_path}},
            ],
        }

    def combine(ctx: TaskContext, value: Any) -> dict[str, Any]:
        return {
            **value.output,
            "title": value.children_outputs[0].output["title"],
            "summary": value.children_outputs[1].output["summary"],
            "requested_url": value.input.upload_url,  # the validated Upload
        }

    upload_file = executor.input_schema(Upload).parent_task(
        id="uploadFile",
        timeout_ms=60_000,
        run_parent=upload,
        on_run_and_children_complete={
            "id": "onUploadFileAndChildrenComplete",
            "timeout_ms": 60_000,
            "run": combine,
        },
    )
    await executor.start()
    handle = await executor.enqueue_task(
        upload_file, {"file_path": "file.txt", "upload_url": "https://example.com/upload"}
    )
    first = await handle.get_execution()
    assert first.execution_id == handle.execution_id
    finished = await handle.wait_and_get_execution(timeout=20)
    await handle.cancel()  # a no-op once finished
    after_cancel = await handle.get_execution()
    assert finished.status is COMPLETED
    assert finished.output == {
        "file_path": "file.txt",
        "upload_url": "https://example.com/upload",
        "size": 100,
        "title": "Title of file.txt",
        "summary": "Summary of file.txt",
        "requested_url": "https://example.com/upload",
    }
    assert after_cancel.status is COMPLETED


async def test_sync_task(executor: DurableExecutor) -> None:
    task_a = executor.task(
        id="a", timeout_ms=1000, run=lambda ctx, input: f"Hello, {input['name']}!"
    )
    await executor.start()
    execution = await run_to_end(executor, task_a, {"name": "world"})
    assert (execution.status, execution.output) == (COMPLETED, "Hello, world!")


async def test_async_task(executor: DurableExecutor) -> None:
    @executor.task(id="a", timeout_ms=1000)
    async def task_a(ctx: TaskContext, input: dict[str, str]) -> str:
        await asyncio.sleep(0.001)
        return f"Hello, {input['name']}!"

    await executor.start()
    execution = await run_to_end(executor, task_a, {"name": "world"})
    assert (execution.status, execution.output) == (COMPLETED, "Hello, world!")


async def test_validate_input(executor: DurableExecutor) -> None:
    def check(input: dict[str, str]) -> dict[str, str]:
        if input["name"] != "world":
            raise ValueError("Invalid input")
        return input

    task_a = executor.validate_input(check).task(
        id="a", timeout_ms=1000, run=lambda ctx, input: f"Hello, {input['name']}!"
    )
    await executor.start()
    ok = await run_to_end(executor, task_a, {"name": "world"})
    bad = await run_to_end(executor, task_a, {"name": "moon"})
    assert (ok.status, ok.output) == (COMPLETED, "Hello, world!")
    assert bad.status is DurableTaskExecutionStatus.FAILED
    assert bad.error is not None
    assert bad.error.message.startswith("Invalid input to task a:")


async def test_input_schema(executor: DurableExecutor) -> None:
    class Name(BaseModel):
        name: str

    task_a = executor.input_schema(Name).task(
        id="a", timeout_ms=1000, run=lambda ctx, input: f"Hello, {input.name}!"
    )
    await executor.start()
    execution = await run_to_end(executor, task_a, {"name": "world"})
    assert (execution.status, execution.output) == (COMPLETED, "Hello, world!")


async def test_retries(executor: DurableExecutor) -> None:
    total_attempts = 0

    def run(ctx: TaskContext, input: dict[str, str]) -> dict[str, Any]:
        nonlocal total_attempts
        total_attempts += 1
        if ctx.attempt < 2:
            raise RuntimeError("Failed")
        return {"total_attempts": total_attempts, "output": f"Hello, {input['name']}!"}

    task_a = executor.task(id="a", timeout_ms=1000, max_retry_attempts=5, run=run)
    await executor.start()
    execution = await run_to_end(executor, task_a, {"name": "world"})
    assert execution.status is COMPLETED
    assert execution.output == {"total_attempts": 3, "output": "Hello, world!"}
    assert execution.retry_attempts == 2


async def test_run_context(executor: DurableExecutor) -> None:
    task_a = executor.task(
        id="a",
        timeout_ms=1000,
        run=lambda ctx: {
            "task_id": ctx.task_id,
            "execution_id": ctx.execution_id,
            "attempt": ctx.attempt,
            "prev_error": ctx.prev_error,
        },
    )
    await executor.start()
    execution = await run_to_end(executor, task_a)
    assert execution.output == {
        "task_id": "a",
        "execution_id": execution.execution_id,
        "attempt": 0,
        "prev_error": None,
    }
    assert execution.execution_id.startswith("te_")


def _hello_tasks(executor: DurableExecutor, *names: str) -> list[DurableTask[Any, Any]]:
    def make(name: str) -> DurableTask[Any, Any]:
        label = name.upper()
        return executor.task(
            id=name,
            timeout_ms=1000,
            run=lambda ctx, input: f"Hello from task {label}, {input['name']}!",
        )

    return [make(name) for name in names]


def _parent_run(*children: DurableTask[Any, Any]) -> Callable[[TaskContext, Any], Any]:
    def run_parent(ctx: TaskContext, input: Any) -> dict[str, Any]:
        name = input["name"] if isinstance(input, dict) else input.name
        return {
            "output": f"Hello from parent task, {name}!",
            "children": [{"task": child, "input": {"name": name}} for child in children],
        }

    return run_parent


async def test_parent_task(executor: DurableExecutor) -> None:
    task_a, task_b = _hello_tasks(executor, "a", "b")
    parent = executor.parent_task(
        id="parent", timeout_ms=1000, run_parent=_parent_run(task_a, task_b)
    )
    await executor.start()
    execution = await run_to_end(executor, parent, {"name": "world"})
    assert execution.status is COMPLETED
    output = execution.output
    assert output["output"] == "Hello from parent task, world!"
    assert [c["output"] for c in output["children_outputs"]] == [
        "Hello from task A, world!",
        "Hello from task B, world!",
    ]
    assert [c["task_id"] for c in output["children_outputs"]] == ["a", "b"]
    assert [c["execution_id"] for c in output["children_outputs"]] == list(
        execution.child_execution_ids
    )


async def test_parent_schema_task(executor: DurableExecutor) -> None:
    class Name(BaseModel):
        name: str

    task_a, task_b = _hello_tasks(executor, "a", "b")
    parent = executor.parent_schema_task(
        id="parent", timeout_ms=1000, input_schema=Name, run_parent=_parent_run(task_a, task_b)
    )
    await executor.start()
    execution = await run_to_end(executor, parent, {"name": "world"})
    assert execution.status is COMPLETED
    assert [c["output"] for c in execution.output["children_outputs"]] == [
        "Hello from task A, world!",
        "Hello from task B, world!",
    ]


async def test_on_run_and_children_complete(executor: DurableExecutor) -> None:
    task_a, task_b = _hello_tasks(executor, "a", "b")
    parent = executor.parent_task(
        id="parent",
        timeout_ms=1000,
        run_parent=_parent_run(task_a, task_b),
        on_run_and_children_complete={
            "id": "onParentRunAndChildrenComplete",
            "timeout_ms": 1000,
            "run": lambda ctx, value: {
                "parent_output": value.output,
                "task_a_output": value.children_outputs[0].output,
                "task_b_output": value.children_outputs[1].output,
            },
        },
    )
    await executor.start()
    execution = await run_to_end(executor, parent, {"name": "world"})
    assert execution.output == {
        "parent_output": "Hello from parent task, world!",
        "task_a_output": "Hello from task A, world!",
        "task_b_output": "Hello from task B, world!",
    }


async def test_sequential_tasks(executor: DurableExecutor) -> None:
    task_a = executor.task(
        id="a",
        timeout_ms=1000,
        run=lambda ctx, i: {"name": i["name"], "a": f"Hello from task A, {i['name']}!"},
    )
    task_b = executor.task(
        id="b",
        timeout_ms=1000,
        run=lambda ctx, i: {**i, "b": f"Hello from task B, {i['name']}!"},
    )
    task_c = executor.task(
        id="c",
        timeout_ms=1000,
        run=lambda ctx, i: {"a": i["a"], "b": i["b"], "c": f"Hello from task C, {i['name']}!"},
    )
    task = executor.sequential_tasks(task_a, task_b, task_c)
    await executor.start()
    execution = await run_to_end(executor, task, {"name": "world"})
    assert execution.output == {
        "a": "Hello from task A, world!",
        "b": "Hello from task B, world!",
        "c": "Hello from task C, world!",
    }


async def test_sequential_tasks_by_hand(executor: DurableExecutor) -> None:
    (task_c,) = _hello_tasks(executor, "c")
    task_b = executor.parent_task(
        id="b",
        timeout_ms=1000,
        run_parent=lambda ctx, i: {"output": f"Hello from task B, {i['name']}!"},
        on_run_and_children_complete={
            "id": "onTaskBRunAndChildrenComplete",
            "timeout_ms": 1000,
            "run_parent": lambda ctx, v: {
                "output": v.output,
                "children": [{"task": task_c, "input": {"name": v.input["name"]}}],
            },
            "on_run_and_children_complete": {
                "id": "onTaskBRunAndChildrenCompleteNested",
                "timeout_ms": 1000,
                "run": lambda ctx, v: {
                    "b": v.output,
                    "c": v.children_outputs[0].output,
                },
            },
        },
    )
    task_a = executor.parent_task(
        id="a",
        timeout_ms=1000,
        run_parent=lambda ctx, i: {"output": f"Hello from task A, {i['name']}!"},
        on_run_and_children_complete={
            "id": "onTaskARunAndChildrenComplete",
            "timeout_ms": 1000,
            "run_parent": lambda ctx, v: {
                "output": v.output,
                "children": [{"task": task_b, "input": {"name": v.input["name"]}}],
            },
            "on_run_and_children_complete": {
                "id": "onTaskARunAndChildrenCompleteNested",
                "timeout_ms": 1000,
                "run": lambda ctx, v: {"a": v.output, **v.children_outputs[0].output},
            },
        },
    )
    await executor.start()
    execution = await run_to_end(executor, task_a, {"name": "world"})
    assert execution.output == {
        "a": "Hello from task A, world!",
        "b": "Hello from task B, world!",
        "c": "Hello from task C, world!",
    }


async def test_sequential_tasks_with_parallel_children(executor: DurableExecutor) -> None:
    a1, a2, b1, b2 = _hello_tasks(executor, "a1", "a2", "b1", "b2")
    task_a = executor.parent_task(
        id="a",
        timeout_ms=1000,
        run_parent=lambda ctx, i: {
            "output": f"Hello from task A, {i['name']}!",
            "children": [ChildTask(a1, {"name": i["name"]}), ChildTask(a2, {"name": i["name"]})],
        },
        on_run_and_children_complete={
            "id": "onTaskARunAndChildrenComplete",
            "timeout_ms": 1000,
            "run": lambda ctx, v: {
                "name": v.input["name"],
                "a": v.output,
                "a1": v.children_outputs[0].output,
                "a2": v.children_outputs[1].output,
            },
        },
    )
    task_b = executor.parent_task(
        id="b",
        timeout_ms=1000,
        run_parent=lambda ctx, i: {
            "output": {
                "a": i["a"],
                "a1": i["a1"],
                "a2": i["a2"],
                "b": f"Hello from task B, {i['name']}!",
            },
            "children": [ChildTask(b1, {"name": i["name"]}), ChildTask(b2, {"name": i["name"]})],
        },
        on_run_and_children_complete={
            "id": "onTaskBRunAndChildrenComplete",
            "timeout_ms": 1000,
            "run": lambda ctx, v: {
                **v.output,
                "b1": v.children_outputs[0].output,
                "b2": v.children_outputs[1].output,
            },
        },
    )
    task = executor.sequential_tasks(task_a, task_b)
    await executor.start()
    execution = await run_to_end(executor, task, {"name": "world"})
    assert execution.output == {
        "a": "Hello from task A, world!",
        "a1": "Hello from task A1, world!",
        "a2": "Hello from task A2, world!",
        "b": "Hello from task B, world!",
        "b1": "Hello from task B1, world!",
        "b2": "Hello from task B2, world!",
    }


async def test_tree_of_parallel_and_sequential_tasks(executor: DurableExecutor) -> None:
    b1 = executor.task(
        id="b1", timeout_ms=1000, run=lambda ctx, i: {"name": i["name"], "b1": f"B1 {i['name']}"}
    )
    b2 = executor.task(id="b2", timeout_ms=1000, run=lambda ctx, i: {**i, "b2": f"B2 {i['name']}"})
    b3 = executor.task(
        id="b3",
        timeout_ms=1000,
        run=lambda ctx, i: {"b1": i["b1"], "b2": i["b2"], "b3": f"B3 {i['name']}"},
    )
    task_b = executor.sequential_tasks(b1, b2, b3)
    a1, a2, a3 = _hello_tasks(executor, "a1", "a2", "a3")
    task_a = executor.parent_task(
        id="a",
        timeout_ms=1000,
        run_parent=lambda ctx, i: {
            "output": f"A {i['name']}",
            "children": [ChildTask(t, {"name": i["name"]}) for t in (a1, a2, a3)],
        },
        on_run_and_children_complete={
            "id": "onTaskARunAndChildrenComplete",
            "timeout_ms": 1000,
            "run": lambda ctx, v: {
                "a": v.output,
                **{f"a{k + 1}": c.output for k, c in enumerate(v.children_outputs)},
            },
        },
    )
    root = executor.parent_task(
        id="root",
        timeout_ms=1000,
        run_parent=lambda ctx, i: {
            "output": f"Root {i['name']}",
            "children": [ChildTask(task_a, i), ChildTask(task_b, i)],
        },
        on_run_and_children_complete={
            "id": "onRootRunAndChildrenComplete",
            "timeout_ms": 1000,
            "run": lambda ctx, v: {
                "root": v.output,
                **v.children_outputs[0].output,
                **v.children_outputs[1].output,
            },
        },
    )
    await executor.start()
    execution = await run_to_end(executor, root, {"name": "world"})
    assert execution.output == {
        "root": "Root world",
        "a": "A world",
        "a1": "Hello from task A1, world!",
        "a2": "Hello from task A2, world!",
        "a3": "Hello from task A3, world!",
        "b1": "B1 world",
        "b2": "B2 world",
        "b3": "B3 world",
    }


class Index(BaseModel):
    index: int = Field(ge=0)


async def test_recursive_task(executor: DurableExecutor) -> None:
    async def run_parent(ctx: TaskContext, input: Index) -> dict[str, Any]:
        await asyncio.sleep(0.001)
        children = [] if input.index >= 9 else [ChildTask(recursive, {"index": input.index + 1})]
        return {"output": None, "children": children}

    recursive: DurableTask[dict[str, int], dict[str, int]] = executor.input_schema(
        Index
    ).parent_task(
        id="recursive",
        timeout_ms=1000,
        run_parent=run_parent,
        on_run_and_children_complete={
            "id": "onRecursiveRunAndChildrenComplete",
            "timeout_ms": 1000,
            "run": lambda ctx, v: {
                "count": 1 + sum(child.output["count"] for child in v.children_outputs)
            },
        },
    )
    await executor.start()
    execution = await run_to_end(executor, recursive, {"index": 0})
    assert (execution.status, execution.output) == (COMPLETED, {"count": 10})


class PrevCount(BaseModel):
    prev_count: int = Field(ge=0)


async def test_polling_task(executor: DurableExecutor) -> None:
    value: dict[str, int] = {}
    ready = threading.Timer(0.3, lambda: value.setdefault("v", 10))

    def run_parent(ctx: TaskContext, input: PrevCount) -> dict[str, Any]:
        if "v" in value:
            return {"output": {"is_done": True, "value": value["v"]}, "children": []}
        return {
            "output": {"is_done": False, "value": None},
            "children": [ChildTask(polling, {"prev_count": input.prev_count + 1})],
        }

    def combine(ctx: TaskContext, v: Any) -> dict[str, int]:
        if v.output["is_done"]:
            return {"count": v.input.prev_count + 1, "value": v.output["value"]}
        return v.children_outputs[0].output  # type: ignore[no-any-return]

    polling: DurableTask[dict[str, int], dict[str, int]] = executor.input_schema(
        PrevCount
    ).parent_task(
        id="polling",
        timeout_ms=1000,
        sleep_ms_before_attempt=50,
        run_parent=run_parent,
        on_run_and_children_complete={
            "id": "onPollingRunAndChildrenComplete",
            "timeout_ms": 1000,
            "run": combine,
        },
    )
    await executor.start()
    ready.start()
    try:
        execution = await run_to_end(executor, polling, {"prev_count": 0})
    finally:
        ready.cancel()
    assert execution.status is COMPLETED
    assert execution.output["value"] == 10
    # 300 ms of polling, one attempt at least every 50 ms: several rounds, bounded.
    assert 2 <= execution.output["count"] <= 60
