# The README's quickstart, checked by mypy (make typecheck); tests/test_docs.py keeps the two equal.
import asyncio
from pydantic import BaseModel
from durable_execution import DurableExecutor, TaskContext

executor = DurableExecutor()  # SQLite file ./durable_execution.db


class FilePath(BaseModel):
    file_path: str


class Upload(BaseModel):
    file_path: str
    upload_url: str


extract_file_title = executor.input_schema(FilePath).task(
    id="extractFileTitle",
    timeout_ms=30_000,
    run=lambda ctx, input: {"title": "File Title"},
)


async def check_path(input: dict) -> dict:
    if not input["file_path"].endswith(".txt"):
        raise ValueError("Invalid file path")
    return input


@executor.validate_input(check_path).task(id="summarizeFile", timeout_ms=30_000)
async def summarize_file(ctx: TaskContext, input: dict) -> dict:
    return {"summary": "File summary"}


@executor.input_schema(Upload).parent_task(
    id="uploadFile",
    timeout_ms=60_000,
    on_run_and_children_complete={
        "id": "onUploadFileAndChildrenComplete",
        "timeout_ms": 60_000,
        "run": lambda ctx, value: {
            **value.output,
            "title": value.children_outputs[0].output["title"],
            "summary": value.children_outputs[1].output["summary"],
        },
    },
)
async def upload_file(ctx: TaskContext, input: Upload) -> dict:
    # ... upload the file, then extract its title and summarize it, in parallel
    return {
        "output": {"file_path": input.file_path, "upload_url": input.upload_url, "size": 100},
        "children": [
            {"task": extract_file_title, "input": {"file_path": input.file_path}},
            {"task": summarize_file, "input": {"file_path": input.file_path}},
        ],
    }


async def main() -> None:
    async with executor:  # start() ... shutdown()
        handle = await executor.enqueue_task(
            upload_file, {"file_path": "file.txt", "upload_url": "https://example.com/upload"}
        )
        execution = await handle.wait_and_get_execution()
        print(execution.status, execution.output)


asyncio.run(main())
