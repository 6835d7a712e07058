"""FinishedRecords: which records are kept (final ones only: completed and closed), and its
bounds."""

from __future__ import annotations

from durable_execution.errors import DurableExecutionErrorInfo
from durable_execution.executor.finished import FinishedRecords, is_final
from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.records import CloseState, ExecutionRecord, NewExecution
from durable_execution.storage.transitions import new_record


def record(
    execution_id: str,
    status: S = S.COMPLETED,
    close_state: CloseState = CloseState.CLOSED,
    *,
    output: str = "1",
    stop_requested: bool = False,
) -> ExecutionRecord:
    stored = new_record(NewExecution(execution_id, "task", "null", start_at_ms=0), now_ms=0)
    stored.status, stored.close_state, stored.stop_requested = status, close_state, stop_requested
    stored.output = output
    return stored


def test_only_records_that_can_never_change_are_final() -> None:
    assert is_final(record("done"))
    # A retry reopens every finished status but completed (storage/retry_rules.py).
    for status in (S.FAILED, S.CANCELLED, S.TIMED_OUT, S.CHILDREN_FAILED):
        assert not is_final(record("unsuccessful", status))
    assert not is_final(record("running", S.RUNNING, CloseState.OPEN))
    assert not is_final(record("to_close", S.FAILED, CloseState.READY))  # closure changes it
    assert not is_final(record("to_stop", S.CANCELLED, stop_requested=True))  # flag cleared later


def test_final_records_are_kept_others_only_known_finished() -> None:
    finished = FinishedRecords()
    done, to_close, running, failed = (
        record("done"),
        record("to_close", S.COMPLETED, CloseState.READY),
        record("running", S.RUNNING, CloseState.OPEN),
        record("failed", S.FAILED),
    )
    for each in (done, to_close, running, failed):
        finished.add(each)
    assert finished.get("done") is done
    assert finished.get("to_close") is None
    assert finished.get("running") is None
    assert finished.get("failed") is None
    assert finished.is_finished("done")
    assert finished.is_finished("to_close")
    assert not finished.is_finished("running")
    assert not finished.is_finished("failed")  # a retry may reopen it
    assert finished.record_count == 1


def test_the_least_recently_used_records_go_first_past_the_count() -> None:
    finished = FinishedRecords(max_records=3)
    for name in "abc":
        finished.add(record(name))
    assert finished.get("a") is not None  # used: "b" is now the oldest
    finished.add(record("d"))
    assert finished.record_count == 3
    assert finished.get("b") is None
    assert not finished.is_finished("b")
    assert all(finished.get(name) is not None for name in "acd")


def test_records_are_bounded_by_their_size_too() -> None:
    big = "x" * 10_000
    finished = FinishedRecords(max_bytes=25_000)
    for name in "abc":
        finished.add(record(name, output=big))
    assert finished.record_count == 2
    assert finished.get("a") is None
    finished.add(record("huge", output="x" * 30_000))  # bigger than the whole budget
    assert finished.get("huge") is None
    assert finished.is_finished("huge")
    assert finished.record_count == 2


def test_a_record_whose_error_is_large_counts_its_error() -> None:
    done = record("done")  # the error's texts count in the size, whatever the status
    done.error = DurableExecutionErrorInfo(message="m", traceback="t" * 30_000)
    finished = FinishedRecords(max_bytes=25_000)
    finished.add(done)
    assert finished.get("done") is None
    assert finished.is_finished("done")


def test_ids_known_finished_are_bounded() -> None:
    finished = FinishedRecords(max_ids=2)
    finished.mark_finished(["a", "b", "c"])
    assert [finished.is_finished(name) for name in "abc"] == [False, True, True]
    finished.mark_to_read("d")
    finished.mark_to_read("e")
    finished.mark_to_read("f")
    assert [finished.is_finished(name) for name in "def"] == [False, True, True]


def test_ids_to_read_are_taken_oldest_first_and_stay_known_finished() -> None:
    finished = FinishedRecords()
    for name in "abcd":
        finished.mark_to_read(name)
    assert finished.take_to_read(3) == ["a", "b", "c"]
    assert finished.take_to_read(3) == ["d"]
    assert finished.take_to_read(3) == []
    assert all(finished.is_finished(name) for name in "abcd")
    finished.add(record("a"))  # read: its record replaces the mark
    assert finished.get("a") is not None
    assert finished.record_count == 1


def test_a_record_read_is_no_longer_to_be_read() -> None:
    finished = FinishedRecords()
    finished.mark_to_read("a")
    finished.add(record("a"))
    assert finished.take_to_read(10) == []
