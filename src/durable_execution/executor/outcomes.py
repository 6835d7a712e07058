"""Pure rules that turn what a run produced into an :class:`ExecutionOutcome`.

No I/O here: retries, parent results, children and the advance of a parent past its children
are plain functions of their inputs, unit-tested on their own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from durable_execution.attributes import encode_attributes, merge_attributes
from durable_execution.children_policy import ALL_SETTLED
from durable_execution.context import (
    ChildTaskOutput,
    ChildTaskResult,
    OnRunAndChildrenCompleteInput,
)
from durable_execution.errors import (
    DurableExecutionErrorInfo,
    DurableExecutionErrorType,
    SerializationError,
)
from durable_execution.executor.sleeping import as_sleeping, check_unique_id
from durable_execution.ids import new_execution_id
from durable_execution.serialization import Serializer, serialize_checked, text_size
from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.records import (
    ChildResult,
    ExecutionOutcome,
    ExecutionRecord,
    NewExecution,
    ParentToAdvance,
)
from durable_execution.task import ChildTask, DurableTask, TaskKind

__all__ = [
    "DataLimits",
    "InvalidParentResultError",
    "advance_outcome",
    "failure_outcome",
    "completion_value",
    "next_step",
    "success_outcome",
]

_STATUS_FOR_ERROR = {
    DurableExecutionErrorType.TIMED_OUT: S.TIMED_OUT,
    DurableExecutionErrorType.CANCELLED: S.CANCELLED,
}
_PARENT_RESULT_KEYS = frozenset({"output", "children"})


@dataclass(frozen=True, slots=True)
class DataLimits:
    """Size limits applied to what user code passes in and returns."""

    max_input_size: int
    max_output_size: int
    max_children: int


class InvalidParentResultError(ValueError):
    """``run_parent`` returned something that is not a valid parent result."""


def _non_retryable(message: str) -> DurableExecutionErrorInfo:
    return DurableExecutionErrorInfo(message=message, is_retryable=False)


def failure_outcome(
    record: ExecutionRecord,
    task: DurableTask[Any, Any],
    error: DurableExecutionErrorInfo,
    now_ms: int,
    exception: BaseException | None = None,
) -> ExecutionOutcome:
    """Retry when the error is retryable and attempts remain; else finish with the error.

    A cancellation is never retried, whatever its retryable flag says. With a
    :class:`~durable_execution.RetryPolicy`, the error must also match its ``retry_on``
    (``exception`` is what the attempt raised; without one, the error as an exception) and the
    wait follows its back-off. A retry waits in storage: ``ready`` with a later start time.
    """
    retryable = error.is_retryable and error.error_type is not DurableExecutionErrorType.CANCELLED
    delay_ms = _retry_delay_ms(record, task, error, exception) if retryable else None
    if delay_ms is not None:
        return ExecutionOutcome(
            execution_id=record.execution_id,
            lease_token=record.lease_token,
            expected_status=S.RUNNING,
            status=S.READY,
            error=error,
            start_at_ms=now_ms + delay_ms,
        )
    return ExecutionOutcome(
        execution_id=record.execution_id,
        lease_token=record.lease_token,
        expected_status=S.RUNNING,
        status=_STATUS_FOR_ERROR.get(error.error_type, S.FAILED),
        error=error,
    )


def _retry_delay_ms(
    record: ExecutionRecord,
    task: DurableTask[Any, Any],
    error: DurableExecutionErrorInfo,
    exception: BaseException | None,
) -> int | None:
    """The wait before retrying a retryable error; ``None`` when it is not retried."""
    options = task.options
    policy = options.retry
    if policy is None:
        if record.retry_attempts < options.max_retry_attempts:
            return options.sleep_ms_before_attempt
        return None
    if record.retry_attempts >= policy.max_retries:
        return None
    if not policy.retries(exception if exception is not None else error.to_exception()):
        return None
    return policy.delay_ms(record.retry_attempts + 1)


def _child_list(task_id: str, children: Any, max_children: int) -> list[ChildTask[Any]]:
    if children is None:
        return []
    if isinstance(children, str | bytes | Mapping) or not isinstance(children, Sequence):
        raise InvalidParentResultError(
            f"run_parent of task {task_id} returned children that are not a list: {children!r}"
        )
    if len(children) > max_children:
        raise InvalidParentResultError(
            f"run_parent of task {task_id} returned {len(children)} children, "
            f"more than the limit of {max_children} (max_children_per_task_execution)"
        )
    result: list[ChildTask[Any]] = []
    for index, child in enumerate(children):
        if isinstance(child, Mapping):
            child = _child_from_mapping(task_id, index, child)
        if not isinstance(child, ChildTask) or not isinstance(child.task, DurableTask):
            raise InvalidParentResultError(
                f"run_parent of task {task_id}: child {index} is not a task: {child!r}"
            )
        if child.task.is_completion:
            raise InvalidParentResultError(
                f"run_parent of task {task_id}: child {index} ({child.task.id}) is an "
                "on_run_and_children_complete task and cannot be a child"
            )
        result.append(child)
    return result


def _child_from_mapping(task_id: str, index: int, child: Mapping[str, Any]) -> ChildTask[Any]:
    unknown = set(child) - {"task", "input", "attributes", "delay_ms"}
    if "task" not in child or unknown:
        raise InvalidParentResultError(
            f"run_parent of task {task_id}: child {index} must be "
            f'{{"task": ..., "input": ...}} or a ChildTask, got {child!r}'
        )
    try:
        return ChildTask(
            child["task"],
            child.get("input"),
            child.get("attributes"),
            delay_ms=child.get("delay_ms", 0),
        )
    except ValueError as exc:
        message = f"run_parent of task {task_id}: child {index}: {exc}"
        raise InvalidParentResultError(message) from exc


def _child_attributes(child: ChildTask[Any], index: int, task_id: str) -> str | None:
    try:
        return encode_attributes(child.attributes)
    except SerializationError as exc:
        raise SerializationError(
            f"Attributes of child {index} ({child.task.id}) of task {task_id}: {exc}"
        ) from exc


def parse_parent_result(
    task_id: str, result: Any, max_children: int
) -> tuple[Any, list[ChildTask[Any]]]:
    """Split ``run_parent``'s result into its output and its children, checking both."""
    if not isinstance(result, Mapping):
        raise InvalidParentResultError(
            f"run_parent of task {task_id} must return a mapping with 'output' and optional "
            f"'children', got {type(result).__name__}"
        )
    unknown = set(result) - _PARENT_RESULT_KEYS
    if unknown:
        raise InvalidParentResultError(
            f"run_parent of task {task_id} returned unknown key(s) {sorted(unknown, key=repr)}; "
            "expected 'output' and optional 'children'"
        )
    return result.get("output"), _child_list(task_id, result.get("children"), max_children)


def _new_child(
    parent: ExecutionRecord,
    task: DurableTask[Any, Any],
    data: str,
    index: int,
    now_ms: int,
    attributes: str | None = None,
    delay_ms: int = 0,
) -> NewExecution:
    """Child ``index`` of ``parent``, running ``task`` on input ``data``; its attributes are
    ``attributes`` (stored text) when given, else the parent's; it starts ``delay_ms`` later
    (a durable timer: it waits in storage)."""
    root_id = parent.root_execution_id or parent.execution_id
    return _new_execution(
        task,
        data,
        root_id,
        parent.execution_id,
        index,
        parent.priority,
        now_ms + delay_ms,
        parent.attributes if attributes is None else attributes,
    )


def _new_execution(
    task: DurableTask[Any, Any],
    data: str,
    root_id: str,
    parent_id: str,
    index: int,
    priority: int,
    not_before_ms: int,
    attributes: str | None,
) -> NewExecution:
    """A new execution of ``task``, to start at ``not_before_ms`` plus the task's own
    ``sleep_ms_before_attempt``."""
    return NewExecution(
        execution_id=new_execution_id(),
        task_id=task.id,
        input=data,
        start_at_ms=not_before_ms + task.options.sleep_ms_before_attempt,
        root_execution_id=root_id,
        parent_execution_id=parent_id,
        index_in_parent=index,
        is_completion=task.is_completion,
        priority=priority,
        attributes=attributes,
    )


def _completion_input(
    serializer: Serializer,
    completion: DurableTask[Any, Any],
    parent_input: Callable[[], Any],
    output: Any,
    children: list[dict[str, Any]],
    settled: list[dict[str, Any]],
) -> str:
    value = {
        "input": parent_input(),
        "output": output,
        "children_outputs": children,
        "children": settled,
    }
    return serializer.serialize(value)


def _settled_child(child: ChildResult, output: Any) -> dict[str, Any]:
    """How ``child`` ended, as stored in a completion task's input (``output``: its output,
    deserialized); the traceback of its error stays with the child."""
    return {
        "task_id": child.task_id,
        "execution_id": child.execution_id,
        "status": child.status.value,
        "output": output,
        "error": None if child.error is None else child.error.to_dict(with_traceback=False),
    }


def _child_result(c: Mapping[str, Any]) -> ChildTaskResult:
    error = c.get("error")
    return ChildTaskResult(
        c["task_id"],
        c["execution_id"],
        S(c["status"]),
        c.get("output"),
        None if error is None else DurableExecutionErrorInfo.from_dict(error),
    )


def completion_value(value: Any) -> OnRunAndChildrenCompleteInput[Any, Any]:
    """Rebuild the completion task's value from its stored input. An input stored by a
    release without ``children`` (its children all completed) gets them from
    ``children_outputs``."""
    outputs = value["children_outputs"]
    children = [ChildTaskOutput(c["task_id"], c["execution_id"], c["output"]) for c in outputs]
    stored = value.get("children")
    if stored is None:
        results = [
            ChildTaskResult(c.task_id, c.execution_id, S.COMPLETED, c.output) for c in children
        ]
    else:
        results = [_child_result(c) for c in stored]
    return OnRunAndChildrenCompleteInput(value["input"], value["output"], children, results)


def _waiting_outcome(
    record: ExecutionRecord,
    status: S,
    run_output: str | None,
    children: list[NewExecution],
    children_policy: str = "fail_fast",
) -> ExecutionOutcome:
    return ExecutionOutcome(
        execution_id=record.execution_id,
        lease_token=record.lease_token,
        expected_status=record.status,
        status=status,
        run_output=run_output,
        children=children,
        children_policy=children_policy,
    )


def _completed(record: ExecutionRecord, output: str) -> ExecutionOutcome:
    return ExecutionOutcome(
        execution_id=record.execution_id,
        lease_token=record.lease_token,
        expected_status=record.status,
        status=S.COMPLETED,
        output=output,
    )


def _failed(record: ExecutionRecord, status: S, message: str) -> ExecutionOutcome:
    return ExecutionOutcome(
        execution_id=record.execution_id,
        lease_token=record.lease_token,
        expected_status=record.status,
        status=status,
        error=_non_retryable(message),
    )


def success_outcome(
    record: ExecutionRecord,
    task: DurableTask[Any, Any],
    parent_input: Any,
    result: Any,
    serializer: Serializer,
    limits: DataLimits,
    now_ms: int,
    child_attributes: str | None = None,
) -> ExecutionOutcome:
    """The outcome of a run that returned ``result`` (a failed one if the result is unusable).

    ``child_attributes`` (stored text) go to the children the run created, over the
    parent's attributes and under each child's own.
    """
    try:
        if task.kind is TaskKind.TASK:
            output = serialize_checked(
                serializer, result, limit=limits.max_output_size, what=f"Output of task {task.id}"
            )
            return _completed(record, output)
        return _parent_outcome(
            record, task, parent_input, result, serializer, limits, now_ms, child_attributes
        )
    except (SerializationError, InvalidParentResultError) as exc:
        return _failed(record, S.FAILED, str(exc))
    except Exception as exc:  # a custom serializer may raise anything
        return _failed(record, S.FAILED, f"Cannot store the result of task {task.id}: {exc!r}")


def _parent_outcome(
    record: ExecutionRecord,
    task: DurableTask[Any, Any],
    parent_input: Any,
    result: Any,
    serializer: Serializer,
    limits: DataLimits,
    now_ms: int,
    child_attributes: str | None,
) -> ExecutionOutcome:
    output, children = parse_parent_result(task.id, result, limits.max_children)
    inherited = merge_attributes(record.attributes, child_attributes)
    run_output = serialize_checked(
        serializer, output, limit=limits.max_output_size, what=f"Output of task {task.id}"
    )
    if children:
        new_children = [
            _sleeping_child(
                _new_child(
                    record,
                    child.task,
                    serialize_checked(
                        serializer,
                        child.input,
                        limit=limits.max_input_size,
                        what=f"Input of child {index} ({child.task.id}) of task {task.id}",
                    ),
                    index,
                    now_ms,
                    merge_attributes(inherited, _child_attributes(child, index, task.id)),
                    child.delay_ms,
                ),
                child,
                index,
                task.id,
            )
            for index, child in enumerate(children)
        ]
        return _waiting_outcome(
            record, S.WAITING_FOR_CHILDREN, run_output, new_children, task.children_policy
        )
    if task.completion is not None:
        data = _completion_input(serializer, task.completion, lambda: parent_input, output, [], [])
        completion = _new_child(record, task.completion, data, 0, now_ms, inherited)
        return _waiting_outcome(
            record, S.WAITING_FOR_ON_RUN_AND_CHILDREN_COMPLETE, run_output, [completion]
        )
    value: dict[str, Any] = {"output": output, "children_outputs": []}
    if task.children_policy == ALL_SETTLED:
        value["children"] = []
    return _completed(record, serializer.serialize(value))


def _sleeping_child(
    new: NewExecution, child: ChildTask[Any], index: int, parent_task_id: str
) -> NewExecution:
    """``new`` as a sleeping execution when ``child`` is of a sleeping task: its input is its
    unique id (checked here: the parent fails, non-retryable, on an invalid one)."""
    if child.task.kind is not TaskKind.SLEEPING:
        return new
    where = f"Child {index} ({child.task.id}) of task {parent_task_id}"
    try:
        unique_id = check_unique_id(child.input, where)
    except ValueError as exc:
        raise InvalidParentResultError(str(exc)) from None
    return as_sleeping(new, child.task, unique_id)


def next_step(
    step: ExecutionRecord,
    sequence: DurableTask[Any, Any],
    output: str,
    limits: DataLimits,
    now_ms: int,
) -> NewExecution | None:
    """The step of ``sequence`` that follows ``step``, which completed with ``output``: the
    successor to insert with its outcome (see ``ExecutionOutcome.successor``).

    ``None`` when ``step`` was the last one, or when ``output`` is too large to be an input:
    the sequence then moves on when it advances past its children (see
    :func:`advance_outcome`), which also reports that error.
    """
    steps = sequence.steps
    index = step.index_in_parent + 1
    if (
        steps is None
        or step.parent_execution_id is None
        or index >= len(steps)
        or steps[index - 1].id != step.task_id
        or text_size(output) > limits.max_input_size
    ):
        return None
    root_id = step.root_execution_id or step.parent_execution_id
    return _new_execution(
        steps[index],
        output,
        root_id,
        step.parent_execution_id,
        index,
        step.priority,
        now_ms,
        step.attributes,  # a step carries its sequence's attributes, as the next one will
    )


def _sequence_advance(
    parent: ParentToAdvance,
    task: DurableTask[Any, Any],
    steps: tuple[DurableTask[Any, Any], ...],
    serializer: Serializer,
    limits: DataLimits,
    now_ms: int,
) -> ExecutionOutcome:
    """A sequence whose steps so far all completed: start the next step, or complete with
    the last step's output."""
    record = parent.record
    done = len(parent.children)
    if done == 0:
        data = record.input
    else:
        last = parent.children[-1].output
        data = last if last is not None else serializer.serialize(None)
    if done >= len(steps):
        return _completed(record, data)
    step = steps[done]
    size = text_size(data)
    if size > limits.max_input_size:
        return _failed(
            record,
            S.FAILED,
            f"Input of step {done} ({step.id}) of sequence {task.id} is too large: {size} "
            f"bytes serialized, the limit is {limits.max_input_size} bytes",
        )
    child = _new_child(record, step, data, done, now_ms)
    return _waiting_outcome(record, S.WAITING_FOR_CHILDREN, None, [child])


def _child_failure(parent: ParentToAdvance, task: DurableTask[Any, Any]) -> ExecutionOutcome | None:
    """The parent's failure when, under ``fail_fast``, one of its children did not complete."""
    if parent.record.children_policy == ALL_SETTLED:
        return None
    for child in parent.children:
        if child.status is not S.COMPLETED and child.status.is_finished:
            reason = child.error.message if child.error is not None else child.status.value
            return _failed(
                parent.record,
                S.CHILDREN_FAILED,
                f"Child task {child.task_id} ({child.execution_id}) of task {task.id} ended "
                f"{child.status.value}: {reason}",
            )
    return None


def advance_outcome(
    parent: ParentToAdvance,
    task: DurableTask[Any, Any],
    serializer: Serializer,
    limits: DataLimits,
    now_ms: int,
) -> ExecutionOutcome:
    """Move a parent past its children: failed (a child did not complete, under
    ``fail_fast``), next step (sequences), completion task, or completed."""
    record = parent.record
    failure = _child_failure(parent, task)
    if failure is not None:
        return failure
    if task.steps is not None:
        return _sequence_advance(parent, task, task.steps, serializer, limits, now_ms)
    settled = record.children_policy == ALL_SETTLED
    try:
        values = [
            None if child.output is None else serializer.deserialize(child.output)
            for child in parent.children
        ]
        outputs = [
            {"task_id": child.task_id, "execution_id": child.execution_id, "output": value}
            for child, value in zip(parent.children, values, strict=True)
        ]
        results = [
            _settled_child(child, value)
            for child, value in zip(parent.children, values, strict=True)
        ]
        run_output = (
            None if record.run_output is None else serializer.deserialize(record.run_output)
        )
        if task.completion is None:
            result = {"output": run_output, "children_outputs": outputs}
            if settled:  # the fail_fast output stays as it was: every child completed
                result["children"] = results
            return _completed(record, serializer.serialize(result))
        data = _completion_input(
            serializer,
            task.completion,
            lambda: serializer.deserialize(record.input),
            run_output,
            outputs,
            results,
        )
    except Exception as exc:  # a custom serializer may raise anything
        return _failed(record, S.FAILED, f"Cannot combine the children outputs of {task.id}: {exc}")
    completion = _new_child(record, task.completion, data, 0, now_ms)
    return _waiting_outcome(record, S.WAITING_FOR_ON_RUN_AND_CHILDREN_COMPLETE, None, [completion])
