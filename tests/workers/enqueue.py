"""An enqueuing process: stores tasks and trees, prints their execution ids, and exits.

Usage: python enqueue.py STORAGE_URL LOG TASKS TREES CHILDREN
Prints one JSON line: {"tasks": [ids...], "trees": [ids...]}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from durable_execution import DurableExecutor
from durable_execution.storage import storage_from_url
from tests.workers.tasks import define_tasks


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("storage_url")
    parser.add_argument("log")
    parser.add_argument("tasks", type=int)
    parser.add_argument("trees", type=int)
    parser.add_argument("children", type=int)
    args = parser.parse_args()
    storage = storage_from_url(args.storage_url)
    executor = DurableExecutor(storage)  # never started: it only enqueues
    tasks = define_tasks(executor, "enqueuer")
    task_ids: list[str] = []
    for start in range(0, args.tasks, 250):  # several batches, interleaved with the trees
        count = min(250, args.tasks - start)
        items = [(tasks["counted"], {"n": n, "log": args.log}) for n in range(count)]
        task_ids += [h.execution_id for h in await executor.enqueue_tasks(items)]
    tree = {"children": args.children, "log": args.log}
    tree_ids = [(await executor.enqueue_task(tasks["counted_tree"], tree)).execution_id]
    tree_ids += [
        h.execution_id
        for h in await executor.enqueue_tasks([(tasks["counted_tree"], tree)] * (args.trees - 1))
    ]
    await executor.shutdown()
    await storage.close()
    print(json.dumps({"tasks": task_ids, "trees": tree_ids}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
