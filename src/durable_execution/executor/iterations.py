"""Pure rules of looping tasks: the next iteration, and a loop moving past its iterations.

A looping task is a parent whose children are the iterations, one at a time, each an
execution of the loop's own copy of the iteration task on the loop's input (stored once per
iteration, never growing). An iteration that completes hands over to the next one in its own
outcome (a successor, as a sequence's steps do), whichever executor ran it: the executor knows
the loop from the iteration's task id. The loop itself is advanced only when no successor was
made: the last iteration said it was done, ``max_iterations`` ran, an iteration did not
complete, or its output was not ``{"is_done": bool, ...}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from durable_execution.executor.outcomes import (
    DataLimits,
    _child_failure,
    _completed,
    _failed,
    _new_child,
    _new_execution,
    _waiting_outcome,
)
from durable_execution.serialization import Serializer
from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.records import (
    ExecutionOutcome,
    ExecutionRecord,
    NewExecution,
    ParentToAdvance,
)
from durable_execution.task import DurableTask

__all__ = ["is_done", "loop_advance", "next_iteration"]


def is_done(result: object) -> bool | None:
    """``result["is_done"]`` of an iteration's output; ``None`` when it is not of that shape."""
    if isinstance(result, Mapping):
        done = result.get("is_done")
        if isinstance(done, bool):
            return done
    return None


def next_iteration(
    iteration: ExecutionRecord,
    loop: DurableTask[Any, Any],
    output: str,
    serializer: Serializer,
    now_ms: int,
) -> NewExecution | None:
    """The iteration of ``loop`` that follows ``iteration``, which completed with ``output``:
    the successor to insert with its outcome; ``None`` when the loop is to be advanced instead
    (done, the last iteration, or an output that is not an iteration result)."""
    spec = loop.loop
    index = iteration.index_in_parent + 1
    if (
        spec is None
        or iteration.parent_execution_id is None
        or iteration.task_id != spec.iteration.id
        or index >= spec.max_iterations
    ):
        return None
    try:
        if is_done(serializer.deserialize(output)) is not False:
            return None
    except Exception:  # a custom serializer may raise anything: the advance reports it
        return None
    return _new_execution(
        spec.iteration,
        iteration.input,  # the loop's input, as stored: it never grows
        iteration.root_execution_id or iteration.parent_execution_id,
        iteration.parent_execution_id,
        index,
        iteration.priority,
        now_ms + spec.sleep_ms_between_iterations,
        iteration.attributes,
    )


def loop_advance(
    parent: ParentToAdvance,
    task: DurableTask[Any, Any],
    serializer: Serializer,
    limits: DataLimits,
    now_ms: int,
) -> ExecutionOutcome:
    """Move a loop past its iterations: failed, completed (done or out of iterations), or
    the next iteration (when the last one completed without handing over)."""
    failed = _child_failure(parent, task)
    if failed is not None:
        return failed
    record, spec = parent.record, task.loop
    assert spec is not None, "loop_advance is for looping tasks"
    done = len(parent.children)
    if done:
        last = parent.children[-1]
        try:
            result = serializer.deserialize(last.output if last.output is not None else "null")
            state = is_done(result)
            if state:
                output = {"is_success": True, "output": result.get("output")}
                return _completed(record, serializer.serialize(output))
        except Exception as exc:  # a custom serializer may raise anything
            message = f"Cannot read iteration {done - 1} of {task.id}: {exc}"
            return _failed(record, S.FAILED, message)
        if state is None:
            return _failed(
                record,
                S.FAILED,
                f"Iteration {done - 1} of looping task {task.id} returned {result!r}: expected "
                "{'is_done': bool, 'output': ...}",
            )
        if done >= spec.max_iterations:
            return _completed(record, serializer.serialize({"is_success": False}))
    delay = spec.sleep_ms_between_iterations if done else 0
    child = _new_child(record, spec.iteration, record.input, done, now_ms, None, delay)
    return _waiting_outcome(record, S.WAITING_FOR_CHILDREN, None, [child])
