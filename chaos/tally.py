"""What a scenario's evidence says: the counts every scenario reports, from pure inputs.

The evidence is three lists, read after the scenario: the audit log (what the database
recorded, :mod:`chaos.audit`), the run log (what ran, :mod:`chaos.runlog`) and the executions
as the storage holds them at the end. :func:`tally` turns them into the figures:

- **executions**: executions in the storage at the end (roots and descendants);
- **lost**: executions acknowledged to the application (their enqueue returned), or seen
  inserted by the audit, that the storage does not hold at the end. Must be 0.
- **stuck**: executions still unfinished at the end, after the scenario's grace period. Must
  be 0.
- **completed twice**: executions whose result was recorded more than once (two changes to
  ``completed``, or a finished execution's result rewritten). Must be 0: exactly once results.
- **wrong outputs**: roots that did not complete, or completed with another output than their
  input implies. Must be 0.
- **extra runs**: runs beyond one per execution (the run log's starts). Expected above 0 when
  processes die: runs are at least once.
- **illegal transitions**: status changes that ``durable_execution.status`` does not allow.
  Must be 0.
- **unlogged**: completed executions of a task that records its runs, without any run in the
  run log (the evidence would be incomplete). Must be 0.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from durable_execution.status import DurableTaskExecutionStatus, is_transition_allowed

from .audit import AuditRow
from .runlog import RunEntry

__all__ = ["Execution", "Tally", "tally"]

S = DurableTaskExecutionStatus
_INSERTED = frozenset({S.READY.value, S.RUNNING.value})


@dataclass(frozen=True, slots=True)
class Execution:
    """An execution as the storage holds it at the end (input and output decoded)."""

    execution_id: str
    task_id: str
    status: str
    parent_execution_id: str | None
    input: Any
    output: Any


@dataclass
class Tally:
    """The figures of one scenario; the lists hold the offending execution ids."""

    executions: int = 0
    lost: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    completed_twice: list[str] = field(default_factory=list)
    wrong_outputs: list[str] = field(default_factory=list)
    extra_runs: int = 0
    illegal_transitions: list[str] = field(default_factory=list)
    unlogged: list[str] = field(default_factory=list)

    def failures(self) -> list[str]:
        """What breaks a guarantee, in words (empty: the scenario held)."""
        checks = {
            "lost": self.lost,
            "stuck": self.stuck,
            "completed twice": self.completed_twice,
            "wrong outputs": self.wrong_outputs,
            "illegal transitions": self.illegal_transitions,
            "completed without a logged run": self.unlogged,
        }
        return [
            f"{name}: {len(items)} (e.g. {', '.join(items[:3])})"
            for name, items in checks.items()
            if items
        ]


def tally(
    *,
    audit: Iterable[AuditRow],
    runs: Iterable[RunEntry],
    executions: Mapping[str, Execution],
    acknowledged: Collection[str],
    output_is_right: Callable[[str, Any, Any], bool],
    unlogged_task_ids: Collection[str] = (),
    expected_to_fail: Collection[str] = (),
) -> Tally:
    """The figures of a scenario from its evidence (see the module's docstring).

    ``expected_to_fail`` are roots whose not completing is the scenario's point (the poison
    task): they are no wrong outputs (the scenario checks how they ended itself)."""
    audit = list(audit)
    result = Tally(executions=len(executions))
    seen = set(acknowledged) | {row.execution_id for row in audit}
    result.lost = sorted(seen - executions.keys())
    result.stuck = sorted(
        e.execution_id for e in executions.values() if not S(e.status).is_finished
    )
    completions = collections.Counter(
        row.execution_id for row in audit if row.new_status == S.COMPLETED.value
    )
    result.completed_twice = sorted(i for i, count in completions.items() if count > 1)
    result.illegal_transitions = [
        f"{row.execution_id} {row.old_status}->{row.new_status}"
        for row in audit
        if not _allowed(row)
    ]
    result.wrong_outputs = sorted(
        e.execution_id
        for e in executions.values()
        if e.parent_execution_id is None
        and e.execution_id not in expected_to_fail
        and S(e.status).is_finished
        and not (e.status == S.COMPLETED.value and output_is_right(e.task_id, e.input, e.output))
    )
    starts = collections.Counter(entry.execution_id for entry in runs if entry.kind == "start")
    result.extra_runs = sum(count - 1 for count in starts.values())
    result.unlogged = sorted(
        e.execution_id
        for e in executions.values()
        if e.status == S.COMPLETED.value
        and e.task_id not in unlogged_task_ids
        and starts[e.execution_id] == 0
    )
    return result


def _allowed(row: AuditRow) -> bool:
    if row.old_status is None:
        return row.new_status in _INSERTED
    if row.old_status == row.new_status:
        return False  # a finished execution's result rewritten
    return is_transition_allowed(S(row.old_status), S(row.new_status))


def takeover_delays(
    runs: Iterable[RunEntry], stops: Iterable[tuple[float, int]]
) -> tuple[list[float], int]:
    """How long the runs a stopped process left behind took to start again elsewhere.

    ``stops`` are ``(unix time, pid)``: a process killed (or paused) then. Its runs that had
    started and not ended are orphans; each one's delay is the time from the stop to the
    next start of that execution by another process. Returns the delays, and how many
    orphans never started again (those show up as stuck, or finished by other means).
    """
    by_execution: dict[str, list[RunEntry]] = collections.defaultdict(list)
    for entry in runs:
        by_execution[entry.execution_id].append(entry)
    delays: list[float] = []
    never = 0
    for stopped_at, pid in stops:
        for entries in by_execution.values():
            orphaned = _orphaned_at(entries, pid, stopped_at)
            if not orphaned:
                continue
            restart = next(
                (e.at for e in entries if e.kind == "start" and e.pid != pid and e.at > stopped_at),
                None,
            )
            if restart is None:
                never += 1
            else:
                delays.append(restart - stopped_at)
    return delays, never


def _orphaned_at(entries: list[RunEntry], pid: int, stopped_at: float) -> bool:
    """Whether ``pid`` had started a run of these entries' execution, not ended it, by
    ``stopped_at``."""
    running = False
    for entry in entries:
        if entry.pid != pid or entry.at > stopped_at:
            continue
        running = entry.kind == "start"
    return running
