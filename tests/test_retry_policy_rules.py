"""RetryPolicy: its validation, its delays and the retry decision (pure; no storage)."""

from __future__ import annotations

from typing import Any

import pytest

from durable_execution import (
    DurableExecutionError,
    DurableExecutionTimedOutError,
    DurableExecutor,
    RetryPolicy,
)
from durable_execution.checks import MAX_DURATION_MS, MAX_RETRY_ATTEMPTS
from durable_execution.errors import DurableExecutionErrorInfo, DurableExecutionErrorType
from durable_execution.executor.outcomes import failure_outcome
from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.memory import InMemoryStorage

from .test_outcomes import NOW, make_record


def run(ctx: Any, input: Any) -> Any:
    return input


def executor() -> DurableExecutor:
    return DurableExecutor(InMemoryStorage())


# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_attempts", 0),
        ("max_attempts", MAX_RETRY_ATTEMPTS + 2),
        ("max_attempts", True),
        ("max_attempts", 2.0),
        ("base_delay_ms", -1),
        ("base_delay_ms", MAX_DURATION_MS + 1),
        ("base_delay_ms", "100"),
        ("max_delay_ms", 999),  # below base_delay_ms (1000)
        ("max_delay_ms", MAX_DURATION_MS + 1),
        ("multiplier", 0.5),
        ("multiplier", 1001.0),
        ("multiplier", float("nan")),
        ("multiplier", float("inf")),
        ("multiplier", True),
        ("jitter", -0.1),
        ("jitter", 1.5),
        ("jitter", "0.1"),
        ("retry_on", ()),
        ("retry_on", (ValueError, "x")),
        ("retry_on", (ValueError, int)),
        ("retry_on", int),
        ("retry_on", "ValueError"),
    ],
)
def test_invalid_fields_are_refused_with_their_name(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=f"Invalid option {field}=.* of RetryPolicy"):
        RetryPolicy(**{field: value})


def test_valid_bounds_are_accepted() -> None:
    RetryPolicy(max_attempts=1, base_delay_ms=0, multiplier=1.0, max_delay_ms=0, jitter=0.0)
    RetryPolicy(
        max_attempts=MAX_RETRY_ATTEMPTS + 1,
        base_delay_ms=MAX_DURATION_MS,
        multiplier=1000,
        max_delay_ms=MAX_DURATION_MS,
        jitter=1,
        retry_on=ValueError,
    )


def test_a_definition_refuses_retry_together_with_the_shorthand() -> None:
    ex = executor()
    policy = RetryPolicy()
    with pytest.raises(ValueError, match=r"either retry=RetryPolicy.* not both"):
        ex.task(id="a", timeout_ms=100, max_retry_attempts=2, retry=policy, run=run)
    with pytest.raises(ValueError, match="not both"):
        ex.task(id="b", timeout_ms=100, sleep_ms_before_attempt=0, retry=policy, run=run)
    with pytest.raises(ValueError, match="not both"):
        ex.parent_task(
            id="c",
            timeout_ms=100,
            run_parent=run,
            on_run_and_children_complete={
                "id": "c_done",
                "timeout_ms": 100,
                "max_retry_attempts": 1,
                "retry": policy,
                "run": run,
            },
        )


def test_a_definition_refuses_a_retry_that_is_not_a_policy() -> None:
    with pytest.raises(ValueError, match="Invalid option retry=3 for task 'a'"):
        executor().task(id="a", timeout_ms=100, retry=3, run=run)  # type: ignore[call-overload]


def test_every_task_kind_takes_a_policy() -> None:
    ex = executor()
    policy = RetryPolicy(max_attempts=4, base_delay_ms=10)
    plain = ex.task(id="plain", timeout_ms=100, retry=policy, run=run)
    parent = ex.parent_task(
        id="parent",
        timeout_ms=100,
        retry=policy,
        run_parent=run,
        on_run_and_children_complete={
            "id": "parent_done",
            "timeout_ms": 100,
            "retry": policy,
            "run": run,
        },
    )
    sequence = ex.sequential_tasks(plain, id="seq", retry=policy)
    validated = ex.validate_input(lambda v: v).task(id="checked", timeout_ms=100, retry=policy)(run)
    assert parent.completion is not None
    for task in (plain, parent, parent.completion, sequence, validated):
        assert task.options.retry is policy
        assert (task.options.max_retry_attempts, task.options.sleep_ms_before_attempt) == (0, 0)


# -- delays ----------------------------------------------------------------------------------


def test_delays_grow_by_the_multiplier_up_to_the_bound() -> None:
    policy = RetryPolicy(base_delay_ms=100, multiplier=3.0, max_delay_ms=2_000)
    assert [policy.delay_ms(n) for n in range(1, 6)] == [100, 300, 900, 2_000, 2_000]


def test_a_multiplier_of_one_is_a_fixed_delay_and_no_bound_means_ten_years() -> None:
    assert {RetryPolicy(base_delay_ms=70, multiplier=1).delay_ms(n) for n in (1, 9, 99)} == {70}
    huge = RetryPolicy(base_delay_ms=1, multiplier=1000.0)
    assert huge.delay_ms(MAX_RETRY_ATTEMPTS) == MAX_DURATION_MS  # no overflow


@pytest.mark.parametrize(("draw", "expected"), [(0.0, 800), (0.5, 1_000), (0.999999, 1_200)])
def test_jitter_spreads_the_delay_to_either_side(draw: float, expected: int) -> None:
    policy = RetryPolicy(base_delay_ms=1_000, jitter=0.2)
    assert policy.delay_ms(1, lambda: draw) == expected


def test_jitter_never_passes_the_bound() -> None:
    policy = RetryPolicy(base_delay_ms=1_000, max_delay_ms=1_000, jitter=0.5)
    assert policy.delay_ms(3, lambda: 0.999) == 1_000
    assert policy.delay_ms(3, lambda: 0.0) == 500


# -- matching errors -------------------------------------------------------------------------


def test_retry_on_types_and_predicates() -> None:
    assert RetryPolicy().retries(KeyError())
    by_type = RetryPolicy(retry_on=(TimeoutError, ConnectionError))
    assert by_type.retries(ConnectionResetError())
    assert not by_type.retries(ValueError())
    assert RetryPolicy(retry_on=LookupError).retries(KeyError())
    by_predicate = RetryPolicy(retry_on=lambda exc: "again" in str(exc))
    assert by_predicate.retries(ValueError("try again"))
    assert not by_predicate.retries(ValueError("never"))


def test_a_predicate_that_raises_means_no_retry() -> None:
    def broken(exc: BaseException) -> bool:
        raise RuntimeError("bug in the predicate")

    assert not RetryPolicy(retry_on=broken).retries(ValueError())


# -- the retry decision ----------------------------------------------------------------------

POLICY = RetryPolicy(max_attempts=3, base_delay_ms=100, multiplier=2.0, retry_on=ValueError)


def policy_task(policy: RetryPolicy = POLICY) -> Any:
    return executor().task(id="p", timeout_ms=100, retry=policy, run=run)


def info(exc: BaseException) -> DurableExecutionErrorInfo:
    return DurableExecutionErrorInfo.from_exception(exc)


@pytest.mark.parametrize(("attempts_so_far", "delay"), [(0, 100), (1, 200)])
def test_a_matching_error_waits_in_storage_as_the_policy_says(
    attempts_so_far: int, delay: int
) -> None:
    record = make_record("p", retry_attempts=attempts_so_far)
    exc = ValueError("flaky")
    outcome = failure_outcome(record, policy_task(), info(exc), NOW, exc)
    assert (outcome.status, outcome.start_at_ms) == (S.READY, NOW + delay)


def test_max_attempts_counts_the_first_attempt() -> None:
    exc = ValueError("flaky")
    record = make_record("p", retry_attempts=2)  # the third attempt failed
    outcome = failure_outcome(record, policy_task(), info(exc), NOW, exc)
    assert (outcome.status, outcome.start_at_ms) == (S.FAILED, None)
    once = policy_task(RetryPolicy(max_attempts=1))
    outcome = failure_outcome(make_record("p"), once, info(exc), NOW, exc)
    assert outcome.status is S.FAILED


def test_an_error_retry_on_does_not_match_is_not_retried() -> None:
    exc = KeyError("nope")
    outcome = failure_outcome(make_record("p"), policy_task(), info(exc), NOW, exc)
    assert outcome.status is S.FAILED


def test_a_non_retryable_error_is_never_retried_even_if_it_matches() -> None:
    policy = RetryPolicy(retry_on=DurableExecutionError)
    exc = DurableExecutionError("fatal", is_retryable=False)
    outcome = failure_outcome(make_record("p"), policy_task(policy), info(exc), NOW, exc)
    assert outcome.status is S.FAILED


def test_a_timeout_is_matched_as_a_timed_out_error() -> None:
    timeout = DurableExecutionErrorInfo(
        message="slow", error_type=DurableExecutionErrorType.TIMED_OUT, is_retryable=True
    )
    on_timeouts = policy_task(RetryPolicy(base_delay_ms=5, retry_on=DurableExecutionTimedOutError))
    outcome = failure_outcome(make_record("p"), on_timeouts, timeout, NOW)
    assert (outcome.status, outcome.start_at_ms) == (S.READY, NOW + 5)
    outcome = failure_outcome(make_record("p"), policy_task(), timeout, NOW)
    assert outcome.status is S.TIMED_OUT
