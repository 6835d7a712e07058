"""Conformance of the abilities on whole trees: :class:`~durable_execution.storage.abilities.
TreeRetry` (an operator's retry, reopening a finished tree in place) and
:class:`~durable_execution.storage.abilities.ExecutionPurge` (deleting whole closed trees in
bounded batches).

A retry takes finished executions back, which the harness's transition check forbids for
every other operation: the scenarios read the tree back after a retry without that check
(:func:`_retry`).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

from durable_execution.errors import (
    DurableExecutionNotFoundError,
    ExecutionNotRetryableError,
)
from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.abilities import ExecutionPurge, TreeRetry, require
from durable_execution.storage.protocol import DurableStorage
from durable_execution.storage.records import CloseState, ExecutionRecord, PurgeBatch
from durable_execution.testing.base import ConformanceBase
from durable_execution.testing.harness import (
    COMPLETION_TASK,
    ERROR_1,
    T0,
    Harness,
    assert_fields,
    child_of,
    new_execution,
    outcome_for,
)

__all__ = ["ExecutionPurgeConformance", "TreeRetryConformance", "tid"]


def tid(ms_offset: int, name: str) -> str:
    """A time-ordered execution id made ``ms_offset`` ms after ``T0`` (as ``ids.py`` makes
    them), ending with ``name`` to tell them apart."""
    return f"te_{T0 + ms_offset:012x}{name.encode().hex():0>20}"


async def _retry(h: Harness, execution_id: str, now_ms: int) -> ExecutionRecord:
    """Retry ``execution_id``, then read every known execution back without the transition
    check (a retry is the one change that takes finished executions back)."""
    root = await require(h.storage, TreeRetry, "retry").retry_execution_tree(
        execution_id, now_ms=now_ms
    )
    for record in await h.storage.get_executions(list(h.latest)):
        h.latest[record.execution_id] = record
    return root


async def _retry_or_reason(storage: DurableStorage) -> str:
    """Retry the tree of ``r`` (at ``T0 + 10``): ``"retried"``, or why it was refused."""
    try:
        await require(storage, TreeRetry, "retry").retry_execution_tree("r", now_ms=T0 + 10)
    except ExecutionNotRetryableError as exc:
        return exc.reason
    return "retried"


async def _failed_tree(h: Harness, root_id: str = "r") -> None:
    """``root_id`` (a parent) with children c1 (completed), c2 (failed) and c3 (running when
    c2 failed, then cancelled by the closure): the root ends ``children_failed``; all
    closed."""
    await h.start_parent(root_id, ["c1", "c2", "c3"])
    c1, c2, c3 = await h.claim_ids("c1", "c2", "c3")
    await h.finish(c1, S.COMPLETED, output='"one"')
    await h.finish(c2, S.FAILED, error=ERROR_1, now_ms=T0 + 1)
    (parent,) = await h.claim_parents(now_ms=T0 + 2)
    outcome = outcome_for(parent.record, S.CHILDREN_FAILED, error=ERROR_1)
    assert await h.record(outcome, now_ms=T0 + 2) == [True]
    await h.close_all(now_ms=T0 + 3)
    await h.storage.claim_cancellations(executor_id=c3.executor_id or "", limit=10)
    await h.refresh()
    assert_fields(h[root_id], status=S.CHILDREN_FAILED, close_state=CloseState.CLOSED)
    assert_fields(h["c3"], status=S.CANCELLED, close_state=CloseState.CLOSED, stop_requested=False)


class TreeRetryConformance(ConformanceBase):
    """An operator's retry: mix it into the test class of a backend with the ability."""

    __test__ = False
    ability: ClassVar[type] = TreeRetry

    def test_a_failed_root_runs_again_with_its_history(self) -> None:
        """A failed leaf root goes back to ``ready``, one attempt more, its error kept, a new
        lease token; claimed and completed, it ends completed."""

        async def body(h: Harness) -> None:
            await h.insert(new_execution("a1"))
            (claimed,) = await h.claim_ids("a1")
            failed = await h.finish(claimed, S.FAILED, error=ERROR_1, now_ms=T0 + 1)
            root = await _retry(h, "a1", T0 + 10)
            assert_fields(
                root,
                status=S.READY,
                retry_attempts=failed.retry_attempts + 1,
                error=ERROR_1,
                start_at_ms=T0 + 10,
                finished_at_ms=None,
                close_state=CloseState.OPEN,
                executor_id=None,
                output=None,
            )
            assert root.lease_token > failed.lease_token
            assert await h.storage.find_finished(["a1"]) == set()
            (again,) = await h.claim_ids("a1", now_ms=T0 + 11)
            done = await h.finish(again, S.COMPLETED, output='"ok"', now_ms=T0 + 12)
            assert_fields(done, status=S.COMPLETED, output='"ok"', error=None)

        self.run_scenario(body)

    def test_a_tree_reopens_what_did_not_complete_and_keeps_the_rest(self) -> None:
        """The failed and the cancelled child run again, the completed one is untouched; the
        root waits for the two; once they complete it can advance."""

        async def body(h: Harness) -> None:
            await _failed_tree(h)
            c1_before = h["c1"]
            root = await _retry(h, "r", T0 + 10)
            assert_fields(
                root,
                status=S.WAITING_FOR_CHILDREN,
                unfinished_children=2,
                failed_children=0,
                close_state=CloseState.OPEN,
                finished_at_ms=None,
                child_execution_ids=("c1", "c2", "c3"),
            )
            assert h["c1"] == c1_before  # not one field changed
            for name in ("c2", "c3"):
                assert_fields(h[name], status=S.READY, close_state=CloseState.OPEN)
            for claimed in await h.claim_ids("c2", "c3", now_ms=T0 + 11):
                await h.finish(claimed, S.COMPLETED, output='"again"', now_ms=T0 + 12)
            await h.close_all(now_ms=T0 + 13)
            (parent,) = await h.claim_parents(now_ms=T0 + 14)
            assert [c.status for c in parent.children] == [S.COMPLETED] * 3

        self.run_scenario(body)

    def test_a_failed_completion_task_runs_again(self) -> None:
        """A parent whose completion task failed waits for it again; it runs again."""

        async def body(h: Harness) -> None:
            parent = await h.advanceable_parent("p", ["c1"])
            (advance,) = await h.claim_parents()
            completion = child_of(parent, "fin", 0, task_id=COMPLETION_TASK, is_completion=True)
            outcome = outcome_for(
                advance.record, S.WAITING_FOR_ON_RUN_AND_CHILDREN_COMPLETE, children=[completion]
            )
            assert await h.record(outcome) == [True]
            (claimed,) = await h.claim_ids("fin")
            await h.finish(claimed, S.FAILED, error=ERROR_1)
            await h.close_all()
            assert h["p"].status is S.ON_RUN_AND_CHILDREN_COMPLETE_FAILED
            root = await _retry(h, "p", T0 + 10)
            assert_fields(
                root, status=S.WAITING_FOR_ON_RUN_AND_CHILDREN_COMPLETE, unfinished_children=1
            )
            assert_fields(h["fin"], status=S.READY)
            assert_fields(h["c1"], status=S.COMPLETED)
            (again,) = await h.claim_ids("fin", now_ms=T0 + 11)
            await h.finish(again, S.COMPLETED, output='"fin"', now_ms=T0 + 12)
            await h.close_all(now_ms=T0 + 13)
            assert_fields(h["p"], status=S.COMPLETED, output='"fin"')

        self.run_scenario(body)

    def test_refusals_change_nothing(self) -> None:
        """Unknown id: not found. A child, an unfinished root, a completed root, a root whose
        tree is still settling: refused with the reason, nothing changed."""

        async def body(h: Harness) -> None:
            ability = require(h.storage, TreeRetry, "retry")
            try:
                await ability.retry_execution_tree("nope", now_ms=T0)
            except DurableExecutionNotFoundError:
                pass
            else:
                raise AssertionError("an unknown id was retried")
            await h.insert(new_execution("done"), new_execution("waits"))
            (done,) = await h.claim_ids("done")
            await h.finish(done, S.COMPLETED, output="1")
            await h.start_parent("p", ["k1", "k2"])
            (k1,) = await h.claim_ids("k1")
            await h.finish(k1, S.FAILED, error=ERROR_1)
            (advance,) = await h.claim_parents()
            outcome = outcome_for(advance.record, S.CHILDREN_FAILED, error=ERROR_1)
            assert await h.record(outcome) == [True]
            # p is finished, its closure (cancelling k2) not done yet: settling.
            cases = {"k1": "not_root", "waits": "unfinished", "done": "completed", "p": "settling"}
            before = {i: (await h.get(i)) for i in [*cases, "k2"]}
            for execution_id, reason in cases.items():
                refused: ExecutionNotRetryableError | None = None
                try:
                    await ability.retry_execution_tree(execution_id, now_ms=T0 + 5)
                except ExecutionNotRetryableError as exc:
                    refused = exc
                assert refused is not None, f"{execution_id} was retried"
                assert (refused.reason, refused.execution_id) == (reason, execution_id), refused
            for execution_id, record in before.items():
                assert await h.get(execution_id) == record

        self.run_scenario(body)

    def test_a_timed_out_sleeping_root_sleeps_again(self) -> None:
        """A sleeping task's execution that timed out sleeps again, with a fresh deadline as
        long as its first."""

        async def body(h: Harness) -> None:
            from durable_execution.storage.abilities import SleepingExecutions
            from durable_execution.testing.sleeping import sleeping

            sleepers = require(h.storage, SleepingExecutions, "sleep")
            await h.insert(sleeping(new_execution("s1"), "u-1", timeout_ms=1_000))
            assert await sleepers.time_out_sleeping_executions(now_ms=T0 + 2_000, limit=10)
            await h.refresh()
            assert h["s1"].status is S.TIMED_OUT
            root = await _retry(h, "s1", T0 + 5_000)
            assert_fields(root, status=S.SLEEPING, expires_at_ms=T0 + 6_000, unique_id="u-1")

        self.run_scenario(body)

    def test_concurrent_retries_reopen_once(self) -> None:
        """Of concurrent retries of one tree (from as many storage objects, in threads), one
        reopens it and the others are refused as ``unfinished``; the children are reopened
        once (one lease token step each)."""

        async def body(h: Harness) -> None:
            await _failed_tree(h)
            token = h["c2"].lease_token

            loop = asyncio.get_running_loop()
            with ThreadPoolExecutor(4) as pool:
                retry = h.run_in_thread(_retry_or_reason)
                results = await asyncio.gather(
                    *[loop.run_in_executor(pool, retry) for _ in range(4)]
                )
            assert sorted(results) == ["retried", "unfinished", "unfinished", "unfinished"]
            record = (await h.storage.get_executions(["c2"]))[0]
            assert_fields(record, status=S.READY, lease_token=token + 1)

        self.run_scenario(body)

    def test_a_retry_racing_a_cancel_leaves_a_consistent_tree(self) -> None:
        """A cancellation of the root concurrent with its retry: either the retry came
        first (then the root is cancelled, and its closure cancels the reopened children),
        or the cancel found it finished and changed nothing (the retry then reopened it).
        Never half of each."""

        async def body(h: Harness) -> None:
            await _failed_tree(h)

            async def cancel(storage: DurableStorage) -> str:
                record = await storage.cancel_execution("r", now_ms=T0 + 10, error=ERROR_1)
                assert record is not None
                return record.status.value

            loop = asyncio.get_running_loop()
            with ThreadPoolExecutor(2) as pool:
                retried, cancelled = await asyncio.gather(
                    loop.run_in_executor(pool, h.run_in_thread(_retry_or_reason)),
                    loop.run_in_executor(pool, h.run_in_thread(cancel)),
                )
            assert retried == "retried"
            await h.storage.close_finished_executions(now_ms=T0 + 20, limit=100)
            records = {r.execution_id: r for r in await h.storage.get_executions(list(h.latest))}
            if records["r"].status is S.CANCELLED:  # the retry came first
                assert records["c2"].status is S.CANCELLED
                assert records["c3"].status is S.CANCELLED
            else:  # the cancel found it finished: it changed nothing, and returned the root
                # as it was, or as the retry left it (read after the retry committed)
                assert cancelled in (S.CHILDREN_FAILED.value, S.WAITING_FOR_CHILDREN.value)
                assert records["r"].status is S.WAITING_FOR_CHILDREN
                assert records["c2"].status is S.READY
            assert records["c1"].status is S.COMPLETED

        self.run_scenario(body)


def _purger(storage: DurableStorage) -> ExecutionPurge:
    return require(storage, ExecutionPurge, "purge")


async def _purge_all(
    storage: DurableStorage,
    before_ms: int,
    *,
    scan_limit: int = 1_000,
    max_trees: int = 1_000,
    dry_run: bool = False,
) -> tuple[int, int, int]:
    """Batches until the scan ends: ``(trees, executions, batches)``."""
    trees = executions = batches = 0
    after = ""
    while True:
        batch: PurgeBatch = await _purger(storage).purge_closed_trees(
            finished_before_ms=before_ms,
            after_execution_id=after,
            scan_limit=scan_limit,
            max_trees=max_trees,
            dry_run=dry_run,
        )
        trees, executions, batches = trees + batch.trees, executions + batch.executions, batches + 1
        if batch.next_after is None:
            return trees, executions, batches
        assert batch.next_after > after, "a purge batch did not move forward"
        after = batch.next_after


class ExecutionPurgeConformance(ConformanceBase):
    """Purging whole closed trees: mix it into the test class of a backend with the ability."""

    __test__ = False
    ability: ClassVar[type] = ExecutionPurge

    async def _forest(self, h: Harness) -> dict[str, str]:
        """Trees made at T0 + 1..6 ms: ``old`` (a root completed), ``key`` (failed, with an
        idempotency key), ``tree`` (a parent whose children completed; all closed),
        ``running`` (a root still running), ``open`` (a failed root not closed yet, a child
        still running), ``late`` (finished after the cut-off). Returns the ids by name."""
        names = ["old", "key", "tree", "running", "open", "late"]
        ids = {name: tid(n, name) for n, name in enumerate(names, start=1)}
        await h.insert(new_execution(ids["old"]), now_ms=T0 + 1)
        await h.insert(new_execution(ids["key"], idempotency_key="the-key"), now_ms=T0 + 2)
        await h.insert(new_execution(ids["late"]), now_ms=T0 + 4)
        old, key, late = await h.claim_ids(ids["old"], ids["key"], ids["late"], now_ms=T0 + 5)
        await h.finish(old, S.COMPLETED, output="1", now_ms=T0 + 10)
        await h.finish(key, S.FAILED, error=ERROR_1, now_ms=T0 + 10)
        await h.finish(late, S.COMPLETED, output="1", now_ms=T0 + 1_000)
        await h.insert(new_execution(ids["running"]), now_ms=T0 + 4)
        await h.claim_ids(ids["running"], now_ms=T0 + 6)
        await h.advanceable_parent(ids["tree"], [tid(20, "t1"), tid(21, "t2")], now_ms=T0 + 7)
        (advance,) = await h.claim_parents(now_ms=T0 + 8)
        done = outcome_for(advance.record, S.COMPLETED, output="2")
        assert await h.record(done, now_ms=T0 + 10) == [True]
        # open: failed with a child still running, its closure (cancelling it) not done yet.
        await h.start_parent(ids["open"], [tid(30, "o1"), tid(31, "o2")], now_ms=T0 + 9)
        o1, _ = await h.claim_ids(tid(30, "o1"), tid(31, "o2"), now_ms=T0 + 9)
        await h.finish(o1, S.FAILED, error=ERROR_1, now_ms=T0 + 10)
        (advance,) = await h.claim_parents(now_ms=T0 + 10)
        fail = outcome_for(advance.record, S.CHILDREN_FAILED, error=ERROR_1)
        assert await h.record(fail, now_ms=T0 + 10) == [True]
        assert h[ids["open"]].close_state is CloseState.READY
        return ids

    def test_purges_whole_closed_trees_and_nothing_else(self) -> None:
        """Closed trees finished before the cut-off go, children included; a running tree,
        a tree not wholly closed and a tree finished later stay, untouched."""

        async def body(h: Harness) -> None:
            ids = await self._forest(h)
            kept = [ids["running"], ids["open"], tid(30, "o1"), tid(31, "o2"), ids["late"]]
            before = {r.execution_id: r for r in await h.storage.get_executions(kept)}
            trees, executions, _ = await _purge_all(h.storage, T0 + 500)
            assert (trees, executions) == (3, 5)
            gone = [ids["old"], ids["key"], ids["tree"], tid(20, "t1"), tid(21, "t2")]
            assert await h.storage.get_executions(gone) == []
            after = {r.execution_id: r for r in await h.storage.get_executions(kept)}
            assert after == before
            assert await _purge_all(h.storage, T0 + 500) == (0, 0, 1)

        self.run_scenario(body)

    def test_a_purge_frees_the_idempotency_key(self) -> None:
        """After the purge, an enqueue with the key of a purged execution inserts anew."""

        async def body(h: Harness) -> None:
            ids = await self._forest(h)
            again = new_execution(tid(40, "again"), idempotency_key="the-key")
            assert await h.storage.insert_executions([again], T0 + 600) == [ids["key"]]
            await _purge_all(h.storage, T0 + 500)
            assert await h.storage.insert_executions([again], T0 + 600) == [again.execution_id]

        self.run_scenario(body)

    def test_batches_are_bounded_and_move_forward(self) -> None:
        """A batch deletes at most ``max_trees`` trees and scans at most ``scan_limit``
        executions; batch after batch, the purge deletes the same as one big batch."""

        async def body(h: Harness) -> None:
            await self._forest(h)
            first = await _purger(h.storage).purge_closed_trees(
                finished_before_ms=T0 + 500, after_execution_id="", scan_limit=100, max_trees=1
            )
            assert (first.trees, first.executions) == (1, 1)
            assert first.next_after is not None
            trees, executions, batches = await _purge_all(
                h.storage, T0 + 500, scan_limit=2, max_trees=1
            )
            assert (trees, executions) == (2, 4)
            assert batches >= 4

        self.run_scenario(body)

    def test_a_dry_run_counts_and_deletes_nothing(self) -> None:
        """``dry_run`` counts what a purge would delete; everything stays."""

        async def body(h: Harness) -> None:
            ids = await self._forest(h)
            assert (await _purge_all(h.storage, T0 + 500, dry_run=True))[:2] == (3, 5)
            assert len(await h.storage.get_executions(list(ids.values()))) == len(ids)

        self.run_scenario(body)

    def test_a_purge_racing_a_retry_takes_all_or_nothing(self) -> None:
        """A purge concurrent with a retry of a purgeable failed tree: either the tree is
        gone whole (the retry then finds nothing), or it was reopened whole and stays."""

        async def body(h: Harness) -> None:
            await _failed_tree(h, "r")

            async def retry(storage: DurableStorage) -> str:
                try:
                    await require(storage, TreeRetry, "retry").retry_execution_tree(
                        "r", now_ms=T0 + 10
                    )
                except DurableExecutionNotFoundError:
                    return "not found"
                return "retried"

            async def purge(storage: DurableStorage) -> tuple[int, int, int]:
                return await _purge_all(storage, T0 + 500)

            loop = asyncio.get_running_loop()
            with ThreadPoolExecutor(2) as pool:
                retried, purged = await asyncio.gather(
                    loop.run_in_executor(pool, h.run_in_thread(retry)),
                    loop.run_in_executor(pool, h.run_in_thread(purge)),
                )
            left = await h.storage.get_executions(["r", "c1", "c2", "c3"])
            if retried == "retried":
                assert purged[:2] == (0, 0)
                assert len(left) == 4
                assert left[0].status is S.WAITING_FOR_CHILDREN
            else:
                assert purged[:2] == (1, 4)
                assert left == []

        self.run_scenario(body)
