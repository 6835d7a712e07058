"""The pure outcome rules: retries, parent results, children, and advancing past children."""

from __future__ import annotations

from typing import Any

import pytest

from durable_execution import (
    ChildTask,
    ChildTaskOutput,
    DurableExecutor,
    DurableTask,
    JsonSerializer,
    OnRunAndChildrenCompleteInput,
)
from durable_execution.errors import DurableExecutionErrorInfo, DurableExecutionErrorType
from durable_execution.executor.outcomes import (
    DataLimits,
    InvalidParentResultError,
    advance_outcome,
    completion_value,
    failure_outcome,
    next_step,
    parse_parent_result,
    success_outcome,
)
from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.memory import InMemoryStorage
from durable_execution.storage.records import (
    ChildResult,
    ExecutionOutcome,
    ExecutionRecord,
    NewExecution,
    ParentToAdvance,
)
from durable_execution.storage.transitions import new_record

NOW = 1_700_000_000_000
LEASE = 7
SERIALIZER = JsonSerializer()
LIMITS = DataLimits(max_input_size=1_000, max_output_size=1_000, max_children=3)
ErrorType = DurableExecutionErrorType


def run(ctx: Any, input: Any) -> Any:
    return input


def run_parent(ctx: Any, input: Any) -> Any:
    return {"output": input}


class Tasks:
    """The tasks the tests use, on one executor that is never started."""

    def __init__(self) -> None:
        ex = DurableExecutor(InMemoryStorage())
        self.plain = ex.task(id="plain", timeout_ms=100, run=run)
        self.retrying = ex.task(
            id="retrying",
            timeout_ms=100,
            max_retry_attempts=2,
            sleep_ms_before_attempt=250,
            run=run,
        )
        self.slow_child = ex.task(
            id="slow_child", timeout_ms=100, sleep_ms_before_attempt=40, run=run
        )
        self.parent = ex.parent_task(id="parent", timeout_ms=100, run_parent=run_parent)
        self.finalizing = ex.parent_task(
            id="finalizing",
            timeout_ms=100,
            run_parent=run_parent,
            on_run_and_children_complete={
                "id": "finalizing_done",
                "timeout_ms": 100,
                "sleep_ms_before_attempt": 5,
                "run": run,
            },
        )
        assert self.finalizing.completion is not None
        self.completion: DurableTask[Any, Any] = self.finalizing.completion
        self.sequence = ex.sequential_tasks(self.plain, self.slow_child, id="seq")


@pytest.fixture
def tasks() -> Tasks:
    return Tasks()


def make_record(
    task_id: str,
    *,
    input: Any = None,
    status: S = S.RUNNING,
    retry_attempts: int = 0,
    root_execution_id: str | None = None,
    parent_execution_id: str | None = None,
    priority: int = 0,
    run_output: Any = None,
    execution_id: str = "te_" + "a" * 32,
) -> ExecutionRecord:
    record = new_record(
        NewExecution(
            execution_id=execution_id,
            task_id=task_id,
            input=SERIALIZER.serialize(input),
            start_at_ms=NOW - 1_000,
            root_execution_id=root_execution_id,
            parent_execution_id=parent_execution_id,
            priority=priority,
        ),
        NOW - 1_000,
    )
    record.status = status
    record.retry_attempts = retry_attempts
    record.lease_token = LEASE
    if run_output is not None:
        record.run_output = SERIALIZER.serialize(run_output)
    return record


def error(
    error_type: ErrorType = ErrorType.GENERIC, *, is_retryable: bool = True
) -> DurableExecutionErrorInfo:
    return DurableExecutionErrorInfo(
        message="it broke", error_type=error_type, is_retryable=is_retryable
    )


def assert_failed_with(outcome: ExecutionOutcome, status: S, *fragments: str) -> None:
    assert outcome.status is status
    assert outcome.error is not None
    assert outcome.error.is_retryable is False
    assert outcome.output is None
    assert not outcome.children
    for fragment in fragments:
        assert fragment in outcome.error.message, outcome.error.message


# -- failure_outcome -------------------------------------------------------------------------


@pytest.mark.parametrize("attempts_so_far", [0, 1])
def test_retryable_error_is_retried_while_attempts_remain(
    tasks: Tasks, attempts_so_far: int
) -> None:
    record = make_record("retrying", retry_attempts=attempts_so_far)
    failure = error()
    outcome = failure_outcome(record, tasks.retrying, failure, NOW)
    assert outcome.status is S.READY
    assert outcome.start_at_ms == NOW + 250
    assert outcome.error is failure
    assert outcome.execution_id == record.execution_id
    assert outcome.lease_token == LEASE
    assert outcome.expected_status is S.RUNNING


def test_retryable_error_fails_once_attempts_are_used_up(tasks: Tasks) -> None:
    failure = error()
    outcome = failure_outcome(
        make_record("retrying", retry_attempts=2), tasks.retrying, failure, NOW
    )
    assert outcome.status is S.FAILED
    assert outcome.error is failure
    assert outcome.start_at_ms is None


def test_task_without_retries_fails_at_once(tasks: Tasks) -> None:
    outcome = failure_outcome(make_record("plain"), tasks.plain, error(), NOW)
    assert outcome.status is S.FAILED


def test_non_retryable_error_is_not_retried(tasks: Tasks) -> None:
    outcome = failure_outcome(
        make_record("retrying"), tasks.retrying, error(is_retryable=False), NOW
    )
    assert outcome.status is S.FAILED


@pytest.mark.parametrize(
    ("error_type", "status"),
    [
        (ErrorType.TIMED_OUT, S.TIMED_OUT),
        (ErrorType.CANCELLED, S.CANCELLED),
        (ErrorType.NOT_FOUND, S.FAILED),
        (ErrorType.GENERIC, S.FAILED),
    ],
)
def test_final_status_follows_the_error_type(
    tasks: Tasks, error_type: ErrorType, status: S
) -> None:
    outcome = failure_outcome(make_record("plain"), tasks.plain, error(error_type), NOW)
    assert outcome.status is status
    assert outcome.error is not None
    assert outcome.error.error_type is error_type


def test_timed_out_attempt_is_retried_while_attempts_remain(tasks: Tasks) -> None:
    outcome = failure_outcome(
        make_record("retrying"), tasks.retrying, error(ErrorType.TIMED_OUT), NOW
    )
    assert outcome.status is S.READY
    exhausted = failure_outcome(
        make_record("retrying", retry_attempts=2), tasks.retrying, error(ErrorType.TIMED_OUT), NOW
    )
    assert exhausted.status is S.TIMED_OUT


def test_cancellation_is_never_retried(tasks: Tasks) -> None:
    flagged_retryable = error(ErrorType.CANCELLED, is_retryable=True)
    outcome = failure_outcome(make_record("retrying"), tasks.retrying, flagged_retryable, NOW)
    assert outcome.status is S.CANCELLED


# -- parse_parent_result ---------------------------------------------------------------------


def test_parent_result_without_children(tasks: Tasks) -> None:
    assert parse_parent_result("p", {"output": 1}, 3) == (1, [])
    assert parse_parent_result("p", {"output": 1, "children": None}, 3) == (1, [])
    assert parse_parent_result("p", {"output": 1, "children": []}, 3) == (1, [])
    assert parse_parent_result("p", {}, 3) == (None, [])


def test_parent_result_children_in_order(tasks: Tasks) -> None:
    output, children = parse_parent_result(
        "p",
        {
            "output": "out",
            "children": (
                {"task": tasks.plain, "input": {"n": 1}},
                ChildTask(tasks.parent, [2]),
                {"task": tasks.plain},
            ),
        },
        3,
    )
    assert output == "out"
    assert children == [
        ChildTask(tasks.plain, {"n": 1}),
        ChildTask(tasks.parent, [2]),
        ChildTask(tasks.plain, None),
    ]


MALFORMED: dict[str, tuple[Any, str]] = {
    "a list": ([1, 2], "must return a mapping with 'output' and optional 'children', got list"),
    "a string": ("done", "got str"),
    "None": (None, "got NoneType"),
    "unknown key": ({"output": 1, "child": []}, "unknown key(s) ['child']"),
    "unknown keys of mixed types": ({"output": 1, 2: "b", "x": 3}, "unknown key(s) ['x', 2]"),
    "children a mapping": ({"children": {"task": None}}, "children that are not a list"),
    "children a string": ({"children": "abc"}, "children that are not a list"),
    "children a number": ({"children": 3}, "children that are not a list"),
    "children a set": ({"children": {1}}, "children that are not a list"),
    "child a number": ({"children": [5]}, "child 0 is not a task"),
    "child task not a task": ({"children": [ChildTask("plain")]}, "child 0 is not a task"),  # type: ignore[arg-type]
    "child mapping without task": ({"children": [{"input": 1}]}, "child 0 must be"),
    "child mapping extra key": ({"children": [{"task": 1, "x": 2}]}, "child 0 must be"),
    "too many children": ({"children": [{"task": None}] * 4}, "4 children, more than the limit"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_parent_result(case: str) -> None:
    result, message = MALFORMED[case]
    with pytest.raises(InvalidParentResultError) as info:
        parse_parent_result("the_parent", result, 3)
    assert "run_parent of task the_parent" in str(info.value)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_child_of_a_wrong_kind_is_named_by_position(tasks: Tasks) -> None:
    children = [ChildTask(tasks.plain, 1), {"task": "plain", "input": 2}]
    with pytest.raises(InvalidParentResultError, match="child 1 is not a task"):
        parse_parent_result("p", {"children": children}, 3)


def test_completion_task_cannot_be_a_child(tasks: Tasks) -> None:
    with pytest.raises(InvalidParentResultError, match=r"child 0 \(finalizing_done\) is an"):
        parse_parent_result("p", {"children": [ChildTask(tasks.completion, None)]}, 3)


def test_too_many_children_names_the_option(tasks: Tasks) -> None:
    children = [ChildTask(tasks.plain, i) for i in range(4)]
    with pytest.raises(InvalidParentResultError, match="max_children_per_task_execution"):
        parse_parent_result("p", {"children": children}, 3)
    assert len(parse_parent_result("p", {"children": children[:3]}, 3)[1]) == 3


# -- success_outcome: plain tasks ------------------------------------------------------------


def succeed(
    tasks_task: DurableTask[Any, Any], record: ExecutionRecord, result: Any, **kw: Any
) -> Any:
    return success_outcome(
        record,
        tasks_task,
        kw.get("parent_input"),
        result,
        kw.get("serializer", SERIALIZER),
        kw.get("limits", LIMITS),
        NOW,
    )


def test_task_output_is_stored(tasks: Tasks) -> None:
    record = make_record("plain")
    outcome = succeed(tasks.plain, record, {"answer": (4, 2)})
    assert outcome.status is S.COMPLETED
    assert outcome.expected_status is S.RUNNING
    assert outcome.lease_token == LEASE
    assert outcome.error is None
    assert SERIALIZER.deserialize(outcome.output) == {"answer": (4, 2)}


def test_task_output_over_the_limit_fails(tasks: Tasks) -> None:
    outcome = succeed(tasks.plain, make_record("plain"), "x" * 1_000)
    assert_failed_with(
        outcome, S.FAILED, "Output of task plain is too large", "1002 bytes", "limit is 1000"
    )


def test_unserializable_task_output_fails(tasks: Tasks) -> None:
    outcome = succeed(tasks.plain, make_record("plain"), object())
    assert_failed_with(outcome, S.FAILED, "Output of task plain is not serializable", "type object")


class BrokenSerializer:
    def __init__(self, *, serialize: Any = None, deserialize: Any = None) -> None:
        self._serialize = serialize
        self._deserialize = deserialize

    def serialize(self, value: Any) -> Any:
        if self._serialize is not None:
            return self._serialize(value)
        return SERIALIZER.serialize(value)

    def deserialize(self, data: str) -> Any:
        if self._deserialize is not None:
            return self._deserialize(data)
        return SERIALIZER.deserialize(data)


def _raise(exc: BaseException) -> Any:
    def raiser(value: Any) -> Any:
        raise exc

    return raiser


def test_custom_serializer_failure_fails_the_task(tasks: Tasks) -> None:
    broken = BrokenSerializer(serialize=_raise(RuntimeError("disk full")))
    outcome = succeed(tasks.plain, make_record("plain"), 1, serializer=broken)
    assert_failed_with(outcome, S.FAILED, "Output of task plain", "RuntimeError: disk full")


# -- success_outcome: parent tasks -----------------------------------------------------------


def test_parent_with_children_waits_for_them(tasks: Tasks) -> None:
    record = make_record("parent", priority=5)
    result = {
        "output": {"from": "parent"},
        "children": [
            {"task": tasks.plain, "input": {"n": 0}},
            ChildTask(tasks.slow_child, {"n": 1}),
            ChildTask(tasks.finalizing, None),
        ],
    }
    outcome = succeed(tasks.parent, record, result)
    assert outcome.status is S.WAITING_FOR_CHILDREN
    assert outcome.expected_status is S.RUNNING
    assert outcome.lease_token == LEASE
    assert SERIALIZER.deserialize(outcome.run_output) == {"from": "parent"}
    assert outcome.output is None
    children = list(outcome.children)
    assert [c.task_id for c in children] == ["plain", "slow_child", "finalizing"]
    assert [c.index_in_parent for c in children] == [0, 1, 2]
    assert [SERIALIZER.deserialize(c.input) for c in children] == [{"n": 0}, {"n": 1}, None]
    assert [c.start_at_ms for c in children] == [NOW, NOW + 40, NOW]
    for child in children:
        assert child.parent_execution_id == record.execution_id
        assert child.root_execution_id == record.execution_id  # the parent is a root
        assert child.priority == 5
        assert child.is_completion is False
        assert child.execution_id.startswith("te_")
    assert len({c.execution_id for c in children}) == 3


def test_children_of_a_nested_parent_keep_the_root(tasks: Tasks) -> None:
    record = make_record(
        "parent", root_execution_id="te_root", parent_execution_id="te_up", priority=-2
    )
    outcome = succeed(tasks.parent, record, {"children": [ChildTask(tasks.plain, 1)]})
    (child,) = outcome.children
    assert child.root_execution_id == "te_root"
    assert child.parent_execution_id == record.execution_id
    assert child.priority == -2


@pytest.mark.parametrize("result", [{"output": "o"}, {"output": "o", "children": []}])
def test_parent_without_children_or_completion_task_completes(
    tasks: Tasks, result: dict[str, Any]
) -> None:
    outcome = succeed(tasks.parent, make_record("parent"), result)
    assert outcome.status is S.COMPLETED
    assert SERIALIZER.deserialize(outcome.output) == {"output": "o", "children_outputs": []}
    assert not outcome.children


@pytest.mark.parametrize("result", [{"output": [1]}, {"output": [1], "children": ()}])
def test_parent_without_children_but_with_completion_task(
    tasks: Tasks, result: dict[str, Any]
) -> None:
    record = make_record("finalizing", input={"in": 1}, priority=3)
    outcome = succeed(tasks.finalizing, record, result, parent_input={"in": 1})
    assert outcome.status is S.WAITING_FOR_ON_RUN_AND_CHILDREN_COMPLETE
    assert SERIALIZER.deserialize(outcome.run_output) == [1]
    (completion,) = outcome.children
    assert completion.task_id == "finalizing_done"
    assert completion.is_completion is True
    assert completion.index_in_parent == 0
    assert completion.parent_execution_id == record.execution_id
    assert completion.priority == 3
    assert completion.start_at_ms == NOW + 5
    value = SERIALIZER.deserialize(completion.input)
    assert value == {"input": {"in": 1}, "output": [1], "children_outputs": [], "children": []}
    rebuilt = completion_value(value)
    assert rebuilt == OnRunAndChildrenCompleteInput({"in": 1}, [1], [])


def test_malformed_parent_result_fails_the_parent(tasks: Tasks) -> None:
    outcome = succeed(tasks.parent, make_record("parent"), ["not", "a", "mapping"])
    assert_failed_with(outcome, S.FAILED, "run_parent of task parent must return a mapping")


def test_too_many_children_fails_the_parent(tasks: Tasks) -> None:
    result = {"children": [ChildTask(tasks.plain, i) for i in range(4)]}
    outcome = succeed(tasks.parent, make_record("parent"), result)
    assert_failed_with(outcome, S.FAILED, "4 children", "limit of 3")


def test_finalize_child_fails_the_parent(tasks: Tasks) -> None:
    result = {"children": [ChildTask(tasks.completion, 1)]}
    outcome = succeed(tasks.parent, make_record("parent"), result)
    assert_failed_with(outcome, S.FAILED, "finalizing_done", "cannot be a child")


def test_child_input_over_the_limit_fails_the_parent(tasks: Tasks) -> None:
    result = {"children": [ChildTask(tasks.plain, 1), ChildTask(tasks.plain, "x" * 2_000)]}
    outcome = succeed(tasks.parent, make_record("parent"), result)
    assert_failed_with(
        outcome, S.FAILED, "Input of child 1 (plain) of task parent is too large", "2002 bytes"
    )


def test_unserializable_child_input_fails_the_parent(tasks: Tasks) -> None:
    result = {"children": [ChildTask(tasks.plain, {1, object()})]}
    outcome = succeed(tasks.parent, make_record("parent"), result)
    assert_failed_with(outcome, S.FAILED, "Input of child 0 (plain) of task parent", "object")


def test_parent_output_over_the_limit_fails(tasks: Tasks) -> None:
    outcome = succeed(tasks.parent, make_record("parent"), {"output": "y" * 1_000})
    assert_failed_with(outcome, S.FAILED, "Output of task parent is too large")


def test_unserializable_parent_output_fails(tasks: Tasks) -> None:
    result = {"output": lambda: None, "children": [ChildTask(tasks.plain, 1)]}
    outcome = succeed(tasks.parent, make_record("parent"), result)
    assert_failed_with(outcome, S.FAILED, "Output of task parent is not serializable")


# -- advance_outcome -------------------------------------------------------------------------


def child(index: int, status: S = S.COMPLETED, output: Any = None, err: Any = None) -> ChildResult:
    return ChildResult(
        execution_id=f"te_child{index}",
        task_id="plain",
        status=status,
        output=None if status is not S.COMPLETED else SERIALIZER.serialize(output),
        error=err,
    )


def waiting(task_id: str, children: list[ChildResult], **kw: Any) -> ParentToAdvance:
    record = make_record(task_id, status=S.WAITING_FOR_CHILDREN, **kw)
    return ParentToAdvance(record=record, children=children)


@pytest.mark.parametrize(
    ("status", "err", "reason"),
    [
        (S.FAILED, error(), "ended failed: it broke"),
        (S.TIMED_OUT, error(ErrorType.TIMED_OUT), "ended timed_out: it broke"),
        (S.CANCELLED, None, "ended cancelled: cancelled"),
        (S.CHILDREN_FAILED, error(is_retryable=False), "ended children_failed: it broke"),
    ],
)
def test_a_child_that_did_not_complete_fails_the_parent(
    tasks: Tasks, status: S, err: Any, reason: str
) -> None:
    parent = waiting("parent", [child(0, output=1), child(1, status, err=err), child(2, S.RUNNING)])
    outcome = advance_outcome(parent, tasks.parent, SERIALIZER, LIMITS, NOW)
    assert_failed_with(
        outcome, S.CHILDREN_FAILED, "Child task plain (te_child1) of task parent", reason
    )
    assert outcome.expected_status is S.WAITING_FOR_CHILDREN
    assert outcome.lease_token == LEASE


def test_all_children_completed_without_completion_task(tasks: Tasks) -> None:
    parent = waiting(
        "parent",
        [child(0, output={"a": 1}), child(1, output=None), child(2, output=(1, 2))],
        run_output={"mine": True},
    )
    outcome = advance_outcome(parent, tasks.parent, SERIALIZER, LIMITS, NOW)
    assert outcome.status is S.COMPLETED
    assert outcome.expected_status is S.WAITING_FOR_CHILDREN
    assert outcome.output is not None
    assert SERIALIZER.deserialize(outcome.output) == {
        "output": {"mine": True},
        "children_outputs": [
            {"task_id": "plain", "execution_id": "te_child0", "output": {"a": 1}},
            {"task_id": "plain", "execution_id": "te_child1", "output": None},
            {"task_id": "plain", "execution_id": "te_child2", "output": (1, 2)},
        ],
    }


def test_all_children_completed_with_completion_task(tasks: Tasks) -> None:
    parent = waiting(
        "finalizing",
        [child(0, output="first"), child(1, output="second")],
        input={"name": "world"},
        run_output="parent out",
        root_execution_id="te_root",
        priority=9,
    )
    outcome = advance_outcome(parent, tasks.finalizing, SERIALIZER, LIMITS, NOW)
    assert outcome.status is S.WAITING_FOR_ON_RUN_AND_CHILDREN_COMPLETE
    assert outcome.expected_status is S.WAITING_FOR_CHILDREN
    assert outcome.run_output is None  # already stored when the children were created
    (completion,) = outcome.children
    assert completion.task_id == "finalizing_done"
    assert completion.is_completion is True
    assert completion.root_execution_id == "te_root"
    assert completion.parent_execution_id == parent.record.execution_id
    assert completion.priority == 9
    assert completion.start_at_ms == NOW + 5
    value = completion_value(SERIALIZER.deserialize(completion.input))
    assert value.input == {"name": "world"}
    assert value.output == "parent out"
    assert [(c.task_id, c.execution_id, c.output) for c in value.children_outputs] == [
        ("plain", "te_child0", "first"),
        ("plain", "te_child1", "second"),
    ]


def test_undecodable_child_output_fails_the_parent(tasks: Tasks) -> None:
    broken = BrokenSerializer(deserialize=_raise(ValueError("garbled")))
    parent = waiting("parent", [child(0, output=1)])
    outcome = advance_outcome(parent, tasks.parent, broken, LIMITS, NOW)
    assert_failed_with(
        outcome, S.FAILED, "Cannot combine the children outputs of parent", "garbled"
    )


# -- sequences -------------------------------------------------------------------------------


def step_record(task_id: str, index: int, **kw: Any) -> ExecutionRecord:
    record = make_record(task_id, parent_execution_id="te_seq", root_execution_id="te_root", **kw)
    record.index_in_parent = index
    return record


def test_a_completed_step_hands_over_to_the_next(tasks: Tasks) -> None:
    step = step_record("plain", 0, priority=4)
    nxt = next_step(step, tasks.sequence, '{"x":1}', LIMITS, NOW)
    assert nxt is not None
    assert (nxt.task_id, nxt.input, nxt.index_in_parent) == ("slow_child", '{"x":1}', 1)
    assert (nxt.parent_execution_id, nxt.root_execution_id) == ("te_seq", "te_root")
    assert nxt.priority == 4
    assert nxt.start_at_ms == NOW + 40  # the next task's sleep_ms_before_attempt
    assert not nxt.is_completion
    outcome = ExecutionOutcome(
        execution_id=step.execution_id,
        lease_token=LEASE,
        expected_status=S.RUNNING,
        status=S.COMPLETED,
        output='{"x":1}',
        successor=nxt,
    )
    assert list(outcome.inserted()) == [nxt]


def test_no_successor_after_the_last_step_or_for_a_stranger(tasks: Tasks) -> None:
    assert next_step(step_record("slow_child", 1), tasks.sequence, "1", LIMITS, NOW) is None
    # Not the task the sequence has at that position, or not a sequence at all.
    assert next_step(step_record("retrying", 0), tasks.sequence, "1", LIMITS, NOW) is None
    assert next_step(step_record("plain", 0), tasks.parent, "1", LIMITS, NOW) is None


def test_an_output_too_large_for_an_input_is_left_to_the_advance(tasks: Tasks) -> None:
    big = SERIALIZER.serialize("é" * 600)  # 1,202 bytes of UTF-8, over the 1,000 limit
    assert next_step(step_record("plain", 0), tasks.sequence, big, LIMITS, NOW) is None
    parent = waiting("seq", [child(0, output="é" * 600)])
    outcome = advance_outcome(parent, tasks.sequence, SERIALIZER, LIMITS, NOW)
    assert_failed_with(
        outcome, S.FAILED, "Input of step 1 (slow_child) of sequence seq is too large"
    )


def test_a_sequence_advances_to_its_next_step(tasks: Tasks) -> None:
    parent = waiting("seq", [child(0, output={"a": 1})], root_execution_id="te_root")
    outcome = advance_outcome(parent, tasks.sequence, SERIALIZER, LIMITS, NOW)
    assert (outcome.expected_status, outcome.status) == (
        S.WAITING_FOR_CHILDREN,
        S.WAITING_FOR_CHILDREN,
    )
    (nxt,) = outcome.children
    assert (nxt.task_id, nxt.index_in_parent) == ("slow_child", 1)
    assert SERIALIZER.deserialize(nxt.input) == {"a": 1}
    assert nxt.parent_execution_id == parent.record.execution_id


def test_a_sequence_completes_with_its_last_output(tasks: Tasks) -> None:
    parent = waiting("seq", [child(0, output=1), child(1, output=[2, "two"])])
    outcome = advance_outcome(parent, tasks.sequence, SERIALIZER, LIMITS, NOW)
    assert outcome.status is S.COMPLETED
    assert outcome.output is not None
    assert SERIALIZER.deserialize(outcome.output) == [2, "two"]


def test_a_failed_step_fails_the_sequence(tasks: Tasks) -> None:
    parent = waiting("seq", [child(0, output=1), child(1, S.TIMED_OUT, err=error())])
    outcome = advance_outcome(parent, tasks.sequence, SERIALIZER, LIMITS, NOW)
    assert_failed_with(outcome, S.CHILDREN_FAILED, "te_child1", "ended timed_out")


@pytest.mark.parametrize(
    "change",
    [
        {"status": S.FAILED},
        {"children": [NewExecution("te_k", "plain", "1", NOW, parent_execution_id="te_p")]},
        {"successor": NewExecution("te_s", "plain", "1", NOW)},
        {
            "successor": NewExecution(
                "te_s", "plain", "1", NOW, parent_execution_id="p", is_completion=True
            )
        },
        {
            "successor": NewExecution(
                "te_s", "plain", "1", NOW, parent_execution_id="p", idempotency_key="k"
            )
        },
    ],
)
def test_a_successor_needs_a_completed_outcome_and_a_sibling(change: dict[str, Any]) -> None:
    fields: dict[str, Any] = {
        "execution_id": "te_c",
        "lease_token": 1,
        "expected_status": S.RUNNING,
        "status": S.COMPLETED,
        "successor": NewExecution("te_s", "plain", "1", NOW, parent_execution_id="te_p"),
        **change,
    }
    with pytest.raises(ValueError, match="successor"):
        ExecutionOutcome(**fields)


# -- completion_value --------------------------------------------------------------------------


def test_completion_value_rebuilds_the_completion_input() -> None:
    value = completion_value(
        {
            "input": {"n": 1},
            "output": "run output",
            "children_outputs": [
                {"task_id": "b", "execution_id": "te_2", "output": [2]},
                {"task_id": "a", "execution_id": "te_1", "output": None},
            ],
        }
    )
    assert isinstance(value, OnRunAndChildrenCompleteInput)
    assert value.input == {"n": 1}
    assert value.output == "run output"
    assert value.children_outputs == [
        ChildTaskOutput("b", "te_2", [2]),
        ChildTaskOutput("a", "te_1", None),
    ]
    assert value.children_outputs[0].task_id == "b"
    assert value.children_outputs[0].execution_id == "te_2"
    assert value.children_outputs[0].output == [2]
