"""The pure rules of the ``children_policy`` option: its validation, the outcome that stores it,
and a parent moving past children that did not all complete (``value.children``)."""

from __future__ import annotations

from typing import Any

import pytest

from durable_execution import ChildTaskResult, DurableExecutor
from durable_execution.errors import DurableExecutionErrorInfo, DurableExecutionErrorType
from durable_execution.executor.outcomes import advance_outcome, completion_value, success_outcome
from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.memory import InMemoryStorage

from .test_outcomes import LIMITS, NOW, SERIALIZER, child, make_record, waiting

ERROR = DurableExecutionErrorInfo(
    "no luck",
    DurableExecutionErrorType.GENERIC,
    is_retryable=False,
    exception_type="builtins.ValueError",
    traceback="Traceback (most recent call last): ...",
)
TIMEOUT = DurableExecutionErrorInfo("too slow", DurableExecutionErrorType.TIMED_OUT)


def _parent_run(ctx: Any, input: Any) -> Any:
    return {"output": "ran", "children": []}


def _tasks() -> dict[str, Any]:
    ex = DurableExecutor(InMemoryStorage())
    done = {"id": "settled_done", "timeout_ms": 100, "run": lambda ctx, value: value}
    return {
        "plain": ex.task(id="plain", timeout_ms=100, run=lambda ctx, i: i),
        "settled": ex.parent_task(
            id="settled", timeout_ms=100, run_parent=_parent_run, children_policy="all_settled"
        ),
        "settled_done": ex.parent_task(
            id="settled_with_completion",
            timeout_ms=100,
            run_parent=_parent_run,
            on_run_and_children_complete=done,
            children_policy="all_settled",
        ),
        "fast_done": ex.parent_task(
            id="fast_with_completion",
            timeout_ms=100,
            run_parent=_parent_run,
            on_run_and_children_complete={**done, "id": "fast_done"},
        ),
    }


def _settled_record(task_id: str) -> Any:
    parent = waiting(task_id, _mixed_children(), input={"n": 1}, run_output="ran")
    parent.record.children_policy = "all_settled"
    return parent


def _mixed_children() -> list[Any]:
    return [
        child(0, output={"a": 1}),
        child(1, S.FAILED, err=ERROR),
        child(2, S.TIMED_OUT, err=TIMEOUT),
        child(3, S.CANCELLED, err=None),
    ]


SETTLED = [
    {"task_id": "plain", "execution_id": "te_child0", "status": "completed", "output": {"a": 1},
     "error": None},
    {"task_id": "plain", "execution_id": "te_child1", "status": "failed", "output": None,
     "error": {"message": "no luck", "error_type": "generic", "is_retryable": False,
               "exception_type": "builtins.ValueError"}},
    {"task_id": "plain", "execution_id": "te_child2", "status": "timed_out", "output": None,
     "error": {"message": "too slow", "error_type": "timed_out", "is_retryable": True}},
    {"task_id": "plain", "execution_id": "te_child3", "status": "cancelled", "output": None,
     "error": None},
]  # fmt: skip


@pytest.mark.parametrize("bad", ["all-settled", "ALL_SETTLED", None, 1, True, ""])
def test_children_policy_is_validated(bad: Any) -> None:
    ex = DurableExecutor(InMemoryStorage())
    with pytest.raises(ValueError, match="children_policy of task 'p' must be 'fail_fast' or"):
        ex.parent_task(id="p", timeout_ms=1, run_parent=_parent_run, children_policy=bad)
    with pytest.raises(ValueError, match="children_policy of task 'q' must be"):
        ex.parent_task(id="q", timeout_ms=1, children_policy=bad)  # the decorator form too
    spec = {"id": "c", "timeout_ms": 1, "run_parent": _parent_run, "children_policy": bad}
    with pytest.raises(ValueError, match="children_policy of on_run_and_children_complete"):
        ex.parent_task(id="r", timeout_ms=1, run_parent=_parent_run,
                       on_run_and_children_complete=spec)  # fmt: skip
    with pytest.raises(ValueError, match="children_policy goes with parent tasks only"):
        ex.parent_task(id="s", timeout_ms=1, run_parent=_parent_run,
                       on_run_and_children_complete={"id": "s_done", "timeout_ms": 1,
                       "run": lambda ctx, v: v, "children_policy": "all_settled"})  # fmt: skip


def test_the_policy_is_on_the_task_and_on_its_waiting_outcome() -> None:
    ex = DurableExecutor(InMemoryStorage())
    plain = ex.task(id="plain", timeout_ms=100, run=lambda ctx, i: i)
    default = ex.parent_task(id="default", timeout_ms=1, run_parent=_parent_run)
    settled = ex.parent_task(
        id="settled", timeout_ms=1, run_parent=_parent_run, children_policy="all_settled"
    )
    assert (default.children_policy, settled.children_policy) == ("fail_fast", "all_settled")
    result = {"output": None, "children": [{"task": plain, "input": 1}]}
    for task, policy in ((default, "fail_fast"), (settled, "all_settled")):
        record = make_record(task.id)
        outcome = success_outcome(record, task, None, result, SERIALIZER, LIMITS, NOW)
        assert (outcome.status, outcome.children_policy) == (S.WAITING_FOR_CHILDREN, policy)


def test_a_settled_parent_without_completion_completes_with_every_child() -> None:
    outcome = advance_outcome(
        _settled_record("settled"), _tasks()["settled"], SERIALIZER, LIMITS, NOW
    )
    assert outcome.status is S.COMPLETED
    assert outcome.output is not None
    assert SERIALIZER.deserialize(outcome.output) == {
        "output": "ran",
        "children_outputs": [
            {"task_id": "plain", "execution_id": f"te_child{i}", "output": s["output"]}
            for i, s in enumerate(SETTLED)
        ],
        "children": SETTLED,
    }


def test_a_settled_parent_gives_its_completion_every_child() -> None:
    tasks = _tasks()
    parent = _settled_record("settled_with_completion")
    outcome = advance_outcome(parent, tasks["settled_done"], SERIALIZER, LIMITS, NOW)
    assert outcome.status is S.WAITING_FOR_ON_RUN_AND_CHILDREN_COMPLETE
    (completion,) = outcome.children
    stored = SERIALIZER.deserialize(completion.input)
    assert stored["children"] == SETTLED
    value = completion_value(stored)
    assert value.input == {"n": 1}
    assert value.output == "ran"
    assert value.children == [
        ChildTaskResult("plain", "te_child0", S.COMPLETED, {"a": 1}, None),
        ChildTaskResult("plain", "te_child1", S.FAILED, None, ERROR.__class__(
            "no luck", DurableExecutionErrorType.GENERIC, False, "builtins.ValueError", None)),
        ChildTaskResult("plain", "te_child2", S.TIMED_OUT, None, TIMEOUT),
        ChildTaskResult("plain", "te_child3", S.CANCELLED, None, None),
    ]  # fmt: skip
    assert [c.output for c in value.children_outputs] == [{"a": 1}, None, None, None]


def test_the_stored_policy_decides_not_the_task() -> None:
    """A parent stored as fail_fast fails on a child that did not complete, even when its
    task now says all_settled (and the reverse): it keeps the policy it started with."""
    tasks = _tasks()
    fast = waiting("settled_with_completion", _mixed_children())
    outcome = advance_outcome(fast, tasks["settled_done"], SERIALIZER, LIMITS, NOW)
    assert outcome.status is S.CHILDREN_FAILED
    settled = _settled_record("fast_with_completion")
    outcome = advance_outcome(settled, tasks["fast_done"], SERIALIZER, LIMITS, NOW)
    assert outcome.status is S.WAITING_FOR_ON_RUN_AND_CHILDREN_COMPLETE


def test_fail_fast_completion_gets_children_too_and_keeps_its_output_shape() -> None:
    tasks = _tasks()
    parent = waiting("fast_with_completion", [child(0, output=5), child(1, output=6)])
    outcome = advance_outcome(parent, tasks["fast_done"], SERIALIZER, LIMITS, NOW)
    value = completion_value(SERIALIZER.deserialize(outcome.children[0].input))
    assert value.children == [
        ChildTaskResult("plain", "te_child0", S.COMPLETED, 5),
        ChildTaskResult("plain", "te_child1", S.COMPLETED, 6),
    ]


def test_a_completion_input_stored_without_children_reads_them_from_the_outputs() -> None:
    """A completion task created by an earlier release (no ``children`` in its input)."""
    value = completion_value(
        {
            "input": 1,
            "output": 2,
            "children_outputs": [{"task_id": "t", "execution_id": "te_1", "output": 3}],
        }
    )
    assert value.children == [ChildTaskResult("t", "te_1", S.COMPLETED, 3, None)]


def test_error_dict_round_trip() -> None:
    assert DurableExecutionErrorInfo.from_dict(ERROR.to_dict()) == ERROR
    assert "traceback" not in ERROR.to_dict(with_traceback=False)
    assert DurableExecutionErrorInfo.from_json(ERROR.to_json()) == ERROR
