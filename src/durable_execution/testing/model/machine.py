"""The state machine: random operations of several executors on one real storage, each
checked against the model (:mod:`.spec`) and the invariants (:mod:`.checks`).

Each step is one operation, drawn with weights among those that can do something in the
current state: Hypothesis gives its rules about even chances, and a machine that cancels or
inserts as often as it claims seldom grows a tree of executions past its first level. Each example
also silences a few disruptive operations (cancel, expire, release...) for its whole run, so
that some runs go deep without them (swarm testing).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any, TypeVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from durable_execution.errors import DuplicateExecutionError
from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.protocol import DurableStorage
from durable_execution.storage.records import CloseState, ExecutionRecord, NewExecution
from durable_execution.storage.transitions import is_advanceable
from durable_execution.testing.model.checks import (
    assert_picked,
    assert_same_records,
    differences,
    mismatches,
    state_problems,
    transition_problems,
)
from durable_execution.testing.model.drafts import (
    BACKSTOPS,
    CANCEL_ERRORS,
    EXECUTORS,
    LEAF_A,
    PARENT,
    TASKS,
    Claim,
    Drafts,
)
from durable_execution.testing.model.spec import ModelStore

__all__ = ["SKEW", "T0", "StorageModelMachine"]

T = TypeVar("T")

T0 = 1_700_000_000_000
SKEW = {"executor-1": 0, "executor-2": 7, "executor-3": -5}
"""Each executor's clock against the machine's: times need not agree between executors."""
_UNKNOWN = "never-inserted"
_MAX_ORDERS = 720
_MAX_IN_FLIGHT = 6
_WEIGHTS = {
    "claim": 4,
    "record": 2,
    "advance": 3,
    "close": 3,
    "insert": 1,
    "tick": 2,
    "expire": 1,
    "renew": 1,
    "release": 1,
    "cancel": 1,
    "claim_cancellations": 1,
}
_CHOICES = tuple(name for name, weight in _WEIGHTS.items() for _ in range(weight))
_DISRUPTIVE = ("cancel", "expire", "release", "renew", "tick")


class StorageModelMachine(RuleBasedStateMachine):
    """Operations of :data:`~.drafts.EXECUTORS` on ``storage``, each compared with a
    :class:`~.spec.ModelStore`.

    After every step all executions are read back and must equal the model's, field by
    field; each change must be an allowed transition that leaves finished executions as
    they were; owners, leases, closure and children counters must agree with the statuses;
    a lease token is never handed out twice, and a stale or forged outcome never applies.
    """

    def __init__(self, storage: DurableStorage, runner: asyncio.Runner) -> None:
        super().__init__()
        self.storage = storage
        self.runner = runner
        self.model = ModelStore()
        self.drafts = Drafts()
        self.now = T0
        self.held: dict[str, dict[str, Claim]] = {e: {} for e in EXECUTORS}
        self.issued: set[tuple[str, int]] = set()
        self.seen: dict[str, ExecutionRecord] = {}
        self.finished: set[str] = set()
        self.batches: list[list[NewExecution]] = []
        self.silenced: frozenset[str] = frozenset()

    # -- the steps -------------------------------------------------------------------------

    @initialize(silenced=st.sets(st.sampled_from(_DISRUPTIVE), max_size=3))
    def silence(self, silenced: set[str]) -> None:
        """Operations this example never runs."""
        self.silenced = frozenset(silenced)

    @rule(data=st.data())
    def step(self, data: st.DataObject) -> None:
        possible = self._possible()
        choices = [name for name in _CHOICES if name in possible]
        if not choices:  # nothing to do (rare): let time pass
            self.now += 1
            return
        getattr(self, f"_{data.draw(st.sampled_from(choices), label='operation')}")(data)

    def _possible(self) -> set[str]:
        """The operations that can do something (or refuse something) worth checking now."""
        model, holders = self.model, bool(self._holders())
        checks = {
            "claim": self._due(),
            "record": holders,
            "advance": any(
                is_advanceable(r.status, r.unfinished_children, r.failed_children)
                for r in model.records.values()
            ),
            "close": model.has(close_state=CloseState.READY),
            "insert": self._in_flight() < _MAX_IN_FLIGHT,
            "tick": self._waits_for_time(),
            "expire": model.has(status=S.RUNNING),
            "renew": holders,
            "release": holders,
            "cancel": self._in_flight() > 0,
            "claim_cancellations": model.has(stop_requested=True),
        }
        return {name for name, ok in checks.items() if ok and name not in self.silenced}

    def _run(self, operation: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(operation)

    def _clock(self, executor: str) -> int:
        return self.now + SKEW[executor]

    def _in_flight(self) -> int:
        return len(self.model.records) - len(self.model.finished_ids())

    def _due(self, executor: str | None = None) -> bool:
        """Whether some ready execution is due by ``executor``'s clock (by default, the
        clock furthest ahead)."""
        now = self.now + max(SKEW.values()) if executor is None else self._clock(executor)
        return any(
            r.status is S.READY and r.start_at_ms <= now for r in self.model.records.values()
        )

    def _waits_for_time(self) -> bool:
        """Whether something waits for the clock: a lease to end, a start to come."""
        return any(
            r.expires_at_ms is not None or (r.status is S.READY and r.start_at_ms > self.now - 10)
            for r in self.model.records.values()
        )

    def _hold(self, executor: str, claim: Claim) -> None:
        """``executor`` got ``claim``: a lease token is never handed out twice."""
        assert claim.lease not in self.issued, f"claim {claim.lease} was handed out twice"
        self.issued.add(claim.lease)
        self.held[executor][claim.record.execution_id] = claim

    def _holders(self) -> list[str]:
        return [e for e in EXECUTORS if self.held[e]]

    def _draw_claims(self, data: st.DataObject) -> tuple[str, list[Claim]]:
        executor = data.draw(st.sampled_from(self._holders()), label="executor")
        held = self.held[executor]
        ids = data.draw(
            st.lists(st.sampled_from(sorted(held)), min_size=1, max_size=5, unique=True),
            label="claims",
        )
        return executor, [held[i] for i in ids]

    # -- inserts ---------------------------------------------------------------------------

    def _insert(self, data: st.DataObject) -> None:
        """New roots; or, sometimes, a batch sent again after an attempt that did commit (an
        enqueue retry)."""
        if self.batches and data.draw(st.integers(0, 4)) == 0:
            batch = data.draw(st.sampled_from(self.batches), label="sent again")
        else:
            known = sorted(self.model.records)
            count = data.draw(st.sampled_from((1, 1, 2, 3, 6)), label="roots")
            if count > 3:  # a burst of leaves, for the batched statements of record_outcomes
                batch = self.drafts.burst(count, self.now)
            else:
                batch = [self.drafts.root(data, self.now, known) for _ in range(count)]
        before = set(self.model.records)
        try:
            expected: list[str] | None = self.model.insert(batch, self.now)
        except DuplicateExecutionError:
            expected = None
        try:
            got: list[str] | None = self._run(self.storage.insert_executions(batch, self.now))
        except DuplicateExecutionError:
            got = None
        assert got == expected, (
            f"insert_executions returned {got}, expected {expected} (None: it raised "
            "DuplicateExecutionError)"
        )
        if expected is not None:
            self.batches.append(batch)
        for new in batch:
            if new.claimed_by is not None and new.execution_id not in before:
                record = self.model.records.get(new.execution_id)
                if record is not None:
                    self._hold(new.claimed_by, Claim(record.copy()))

    # -- claims and leases -----------------------------------------------------------------

    def _claim(self, data: st.DataObject) -> None:
        # Mostly an executor for which something is due (their clocks differ).
        ready = [e for e in EXECUTORS if self._due(e)]
        executor = data.draw(st.sampled_from(ready + ready + list(EXECUTORS)), label="executor")
        some_tasks = st.sets(st.sampled_from(TASKS), min_size=1)
        tasks = TASKS if data.draw(st.integers(0, 3)) else data.draw(some_tasks, label="tasks")
        args: dict[str, Any] = {
            "executor_id": executor,
            "lease_ms_by_task": {t: BACKSTOPS[t] for t in sorted(tasks)},
            "now_ms": self._clock(executor),
            "limit": data.draw(st.integers(1, 6), label="limit"),
            "lease_ms": data.draw(st.sampled_from((None, 300, 2_000)), label="lease_ms"),
            "max_suspects": data.draw(st.sampled_from((None, None, 0, 1)), label="max_suspects"),
        }
        expected = self.model.claim(**args)
        got = self._run(self.storage.claim_ready_executions(**args))
        assert_same_records("claim_ready_executions", got, expected)
        for record in got:
            self._hold(executor, Claim(record))
        self._maybe_write_at_once(data, executor, got)

    def _maybe_write_at_once(
        self, data: st.DataObject, executor: str, claimed: Sequence[ExecutionRecord]
    ) -> None:
        """Often, the executor writes what its new claims produced in the same step (a run
        that returns at once, a parent moving on): trees grow and finish in fewer steps."""
        if claimed and data.draw(st.integers(0, 2), label="write at once") > 0:
            self.storage_matches_the_model()  # the claim, checked on its own
            held = self.held[executor]
            self._write(data, executor, [held[r.execution_id] for r in claimed])

    def _renew(self, data: st.DataObject) -> None:
        executor, claims = self._draw_claims(data)
        sender = data.draw(st.sampled_from((executor, executor, executor, "executor-1")))
        lease_ms = data.draw(st.sampled_from((300, 2_000)), label="lease_ms")
        leases = [c.lease for c in claims]
        now = self._clock(executor)
        expected = self.model.renew(sender, leases, now, lease_ms)
        got = self._run(
            self.storage.renew_leases(
                executor_id=sender, leases=leases, now_ms=now, lease_ms=lease_ms
            )
        )
        assert got == expected, f"renew_leases returned {got}, expected {expected}"

    def _release(self, data: st.DataObject) -> None:
        executor, claims = self._draw_claims(data)
        leases = [c.lease for c in claims]
        now = self._clock(executor)
        expected = self.model.release(leases, now)
        got = self._run(self.storage.release_executions(leases, now_ms=now))
        assert got == expected, f"release_executions returned {got}, expected {expected}"
        for claim in claims:
            del self.held[executor][claim.record.execution_id]

    def _expire(self, data: st.DataObject) -> None:
        limit = data.draw(st.sampled_from((1, 2, 100)), label="limit")
        max_expiries = data.draw(st.sampled_from((None, 1, 2, 3)), label="max_lease_expiries")
        due = self.model.expirable(self.now)
        got = self._run(
            self.storage.expire_leases(
                now_ms=self.now, limit=limit, max_lease_expiries=max_expiries
            )
        )
        assert_picked("expire_leases", got, due, limit)
        for execution_id in got:
            self.model.expire(execution_id, self.now, max_expiries)

    def _tick(self, data: st.DataObject) -> None:
        self.now += data.draw(st.sampled_from((1, 50, 400, 2_500, 7_000)), label="ms")

    # -- outcomes --------------------------------------------------------------------------

    def _record(self, data: st.DataObject) -> None:
        """An executor writes what some of its claims produced; claims it lost are fenced."""
        executor, claims = self._draw_claims(data)
        self._write(data, executor, claims)

    def _write(self, data: st.DataObject, executor: str, claims: list[Claim]) -> None:
        """Write outcomes for ``claims``, and sometimes one with a lease token its execution
        does not have (never handed out, or past), which never applies."""
        now = self._clock(executor)
        outcomes = [self.drafts.outcome(data, claim, now) for claim in claims]
        current = {
            o.execution_id: (
                self.model.records[o.execution_id].status,
                self.model.records[o.execution_id].lease_token,
            )
            for o in outcomes
        }
        if data.draw(st.integers(0, 3), label="forge one") == 0:
            forged_id = data.draw(st.sampled_from(sorted(self.model.records)))
            forged = self.drafts.forged(data, self.model.records[forged_id])
            outcomes.insert(data.draw(st.integers(0, len(outcomes))), forged)
        expected = self.model.record_outcomes(outcomes, now)
        got = self._run(self.storage.record_outcomes(outcomes, now))
        assert got == expected, f"record_outcomes returned {got}, expected {expected}"
        for outcome, applied in zip(outcomes, got, strict=True):
            still_valid = current.get(outcome.execution_id) == (
                outcome.expected_status,
                outcome.lease_token,
            )
            assert still_valid or not applied, f"a stale or forged outcome applied: {outcome}"
            for new in outcome.inserted() if applied else ():
                if new.claimed_by is not None:
                    self._hold(new.claimed_by, Claim(self.model.records[new.execution_id].copy()))
        for claim in claims:
            # A run's claim is sometimes kept, to write with it again (fenced: its status
            # changed). Not a parent's: moving on to more children leaves its claim valid.
            if claim.children is not None or data.draw(st.integers(0, 3), label="keep") > 0:
                del self.held[executor][claim.record.execution_id]

    # -- parents and closure ---------------------------------------------------------------

    def _advance(self, data: st.DataObject) -> None:
        executor = data.draw(st.sampled_from(EXECUTORS), label="executor")
        task_ids = data.draw(st.sampled_from(((PARENT,), (PARENT, LEAF_A))))
        lease_ms = data.draw(st.sampled_from((300, 2_000)), label="lease_ms")
        limit = data.draw(st.integers(1, 3), label="limit")
        now = self._clock(executor)
        expected = self.model.claim_parents(task_ids, now, lease_ms, limit)
        got = self._run(
            self.storage.claim_parents_to_advance(
                task_ids=task_ids, now_ms=now, lease_ms=lease_ms, limit=limit
            )
        )
        assert_same_records(
            "claim_parents_to_advance", [p.record for p in got], [p.record for p in expected]
        )
        for mine, theirs in zip(got, expected, strict=True):
            assert mine.children == theirs.children, (
                f"children of {mine.record.execution_id}: {mine.children}, "
                f"expected {theirs.children}"
            )
            self._hold(executor, Claim(mine.record, mine.children))
        self._maybe_write_at_once(data, executor, [p.record for p in got])

    def _close(self, data: st.DataObject) -> None:
        """Closures in any order the storage chose, as long as some order of one-by-one
        closures explains the result."""
        limit = data.draw(st.sampled_from((1, 2, 3, 100)), label="limit")
        due = self.model.closable()
        result = self._run(self.storage.close_finished_executions(now_ms=self.now, limit=limit))
        after = self._read_all()
        closed = sorted(
            i for i, r in after.items() if r.is_closed and not self.model.records[i].is_closed
        )
        assert min(limit, len(due)) <= result.closed <= limit, (
            f"closed {result.closed} with limit {limit} and {len(due)} due"
        )
        self.model, finished, count = self._replay_closures(closed, after)
        assert count == result.closed, f"closed {result.closed}, but {count} closures explain it"
        assert sorted(result.finished_execution_ids) == sorted(finished), (
            f"finished {sorted(result.finished_execution_ids)}, expected {sorted(finished)}"
        )

    def _replay_closures(
        self, closed: Sequence[str], stored: Mapping[str, ExecutionRecord]
    ) -> tuple[ModelStore, list[str], int]:
        """The model after closing ``closed`` (and nothing else), in the first order that
        gives what the storage holds (the contract does not order a batch's closures)."""
        first: list[str] | None = None
        for order in itertools.islice(itertools.permutations(closed), _MAX_ORDERS):
            model = self.model.copy()
            finished, count = model.close_in_order(order, self.now)
            problems = mismatches(model, stored)
            if not problems:
                return model, finished, count
            first = first or problems
        raise AssertionError(
            "no order of the closures explains the storage's state; in id order:\n"
            + "\n".join(first or ())
        )

    # -- cancellation ----------------------------------------------------------------------

    def _cancel(self, data: st.DataObject) -> None:
        # Mostly an unfinished execution; sometimes a finished or an unknown one.
        unfinished = sorted(set(self.model.records) - self.model.finished_ids())
        anyone = [*sorted(self.model.records), _UNKNOWN]
        execution_id = data.draw(st.sampled_from(unfinished * 3 + anyone), label="cancel")
        error = data.draw(st.sampled_from(CANCEL_ERRORS), label="error")
        expected = self.model.cancel(execution_id, self.now, error)
        got = self._run(self.storage.cancel_execution(execution_id, now_ms=self.now, error=error))
        if expected is None or got is None:
            assert got is expected, f"cancel_execution returned {got}, expected {expected}"
        else:
            problems = differences(expected, got)
            assert not problems, "cancel_execution returned:\n" + "\n".join(problems)

    def _claim_cancellations(self, data: st.DataObject) -> None:
        executor = data.draw(st.sampled_from(EXECUTORS), label="executor")
        limit = data.draw(st.sampled_from((1, 100)), label="limit")
        flagged = self.model.flagged(executor)
        got = self._run(self.storage.claim_cancellations(executor_id=executor, limit=limit))
        assert_picked("claim_cancellations", got, flagged, limit)
        for execution_id in got:
            self.model.clear_flag(execution_id)

    # -- after every step ------------------------------------------------------------------

    def _read_all(self) -> dict[str, ExecutionRecord]:
        ids = sorted(self.model.records)
        records = self._run(self.storage.get_executions([_UNKNOWN, *ids]))
        assert [r.execution_id for r in records] == ids, (
            f"get_executions returned {[r.execution_id for r in records]}, expected {ids}"
        )
        return {r.execution_id: r for r in records}

    def _shared_claims(self, stored: Mapping[str, ExecutionRecord]) -> list[str]:
        """No execution is in two executors' hands: at most one claim held on it is still
        the current one (its status and lease token)."""
        holders: dict[str, list[str]] = {}
        for executor in EXECUTORS:
            for execution_id, claim in self.held[executor].items():
                record = stored.get(execution_id)
                if record is not None and (record.status, record.lease_token) == (
                    claim.record.status,
                    claim.record.lease_token,
                ):
                    holders.setdefault(execution_id, []).append(executor)
        return [f"{i} is in the hands of {', '.join(h)}" for i, h in holders.items() if len(h) > 1]

    @invariant()
    def storage_matches_the_model(self) -> None:
        stored = self._read_all()
        problems = mismatches(self.model, stored)
        for execution_id, record in stored.items():
            if execution_id in self.seen:
                problems.extend(transition_problems(self.seen[execution_id], record))
        problems.extend(state_problems(stored))
        problems.extend(self._shared_claims(stored))
        expected = self.model.finished_ids()
        if expected != self.finished:  # asked when it changed: a round trip less per step
            finished = self._run(self.storage.find_finished([*self.model.records, _UNKNOWN]))
            if finished != expected:
                problems.append(
                    f"find_finished says {sorted(finished)}, expected {sorted(expected)}"
                )
        assert not problems, "\n".join(problems)
        self.seen, self.finished = stored, expected
