"""Conformance under concurrency: many storage objects, coroutines and threads at once.

Coroutines share the scenario's event loop (spread over several storage objects from
``reconnect``); threads each run their own event loop on their own storage object.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.protocol import DurableStorage
from durable_execution.storage.records import CloseState, ExecutionRecord
from durable_execution.testing.base import ConformanceBase
from durable_execution.testing.harness import (
    CHILD_TASK,
    ERROR_1,
    ERROR_2,
    EXECUTOR_1,
    LEASES,
    PARENT_TASK,
    T0,
    TASK_A,
    TASK_B,
    Harness,
    assert_fields,
    child_of,
    ids_of,
    new_execution,
    outcome_for,
)

__all__ = ["ConcurrencyConformance"]

T = TypeVar("T")

_STORAGES = 8
_THREADS = 4
_ROUNDS = 400
"""How many calls a concurrent worker makes at most: more than a correct storage needs, so
that a broken one (handing out work again and again) fails instead of hanging."""

Work = Callable[[DurableStorage], Awaitable[T]]


async def _all_at_once(
    h: Harness, storages: Sequence[DurableStorage], coroutines: int, work: Callable[[int], Work[T]]
) -> list[T]:
    """Run ``work(n)`` for ``coroutines`` coroutines over ``storages`` and for each of the
    threads, all at once: results of the coroutines first, then of the threads."""
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(_THREADS, thread_name_prefix="conformance") as pool:
        in_threads = [
            loop.run_in_executor(pool, h.run_in_thread(work(coroutines + n)))
            for n in range(_THREADS)
        ]
        in_loop = [work(n)(storages[n % len(storages)]) for n in range(coroutines)]
        return list(await asyncio.gather(*in_loop, *in_threads))


async def _storages(h: Harness) -> list[DurableStorage]:
    return [h.storage] + [await h.connect() for _ in range(_STORAGES - 1)]


def _owners(claims: Sequence[list[str]]) -> tuple[dict[str, int], list[str]]:
    """Who claimed each id, and the ids claimed more than once."""
    owners: dict[str, int] = {}
    duplicates: list[str] = []
    for claimer, ids in enumerate(claims):
        for execution_id in ids:
            if execution_id in owners:
                duplicates.append(execution_id)
            owners[execution_id] = claimer
    return owners, duplicates


def _claimer(n: int) -> Work[list[str]]:
    async def claim(storage: DurableStorage) -> list[str]:
        claimed: list[str] = []
        for _ in range(_ROUNDS):
            batch = await storage.claim_ready_executions(
                executor_id=f"claimer-{n}", lease_ms_by_task=LEASES, now_ms=T0, limit=7
            )
            if not batch:
                return claimed
            claimed.extend(ids_of(batch))
            await asyncio.sleep(0)  # let the other claimers in
        return claimed

    return claim


def _parent_claimer(n: int) -> Work[list[str]]:
    async def claim(storage: DurableStorage) -> list[str]:
        claimed: list[str] = []
        for _ in range(_ROUNDS):
            batch = await storage.claim_parents_to_advance(
                task_ids=[PARENT_TASK], now_ms=T0 + 10, lease_ms=60_000, limit=2
            )
            if not batch:
                return claimed
            claimed.extend(p.record.execution_id for p in batch)
            await asyncio.sleep(0)
        return claimed

    return claim


def _closer(n: int) -> Work[int]:
    async def close(storage: DurableStorage) -> int:
        closed = 0
        for _ in range(_ROUNDS):
            result = await storage.close_finished_executions(now_ms=T0 + 5, limit=3)
            assert result.finished_execution_ids == [], result
            if result.closed == 0:
                return closed
            closed += result.closed
            await asyncio.sleep(0)
        return closed

    return close


def _inserter(n: int) -> Work[list[str]]:
    async def insert(storage: DurableStorage) -> list[str]:
        new = new_execution(f"idem{n:02d}", idempotency_key="one-key")
        return await storage.insert_executions([new], T0)

    return insert


class ConcurrencyConformance(ConformanceBase):
    """Concurrent claims, outcomes, cancellations, closures and inserts."""

    __test__ = False

    def test_concurrent_claimers_never_receive_the_same_execution(self) -> None:
        """Claimers in coroutines and threads together claim every execution exactly once."""

        async def body(h: Harness) -> None:
            ids = [f"cc{n:04d}" for n in range(300)]
            news = [
                new_execution(i, (TASK_A, TASK_B)[n % 2], priority=n % 3) for n, i in enumerate(ids)
            ]
            assert await h.storage.insert_executions(news, T0) == ids
            claims = await _all_at_once(h, await _storages(h), 28, _claimer)
            owners, duplicates = _owners(claims)
            assert duplicates == [], f"claimed more than once: {sorted(set(duplicates))}"
            assert sorted(owners) == ids, f"never claimed: {sorted(set(ids) - set(owners))}"
            wrong = [
                r.execution_id
                for r in await h.storage.get_executions(ids)
                if r.status is not S.RUNNING or r.executor_id != f"claimer-{owners[r.execution_id]}"
            ]
            assert wrong == [], f"not running under their claimer: {wrong}"

        self.run_scenario(body)

    def test_concurrent_outcomes_and_cancels_leave_one_legal_status(self) -> None:
        """An outcome racing a cancellation: exactly one of them wins, consistently."""

        async def body(h: Harness) -> None:
            ids = [f"oc{n:03d}" for n in range(80)]
            await h.storage.insert_executions([new_execution(i) for i in ids], T0)
            claimed = await h.claim(now_ms=T0, limit=100)
            assert ids_of(claimed) == ids
            completer, canceller = await h.connect(), await h.connect()

            async def complete(record: ExecutionRecord) -> bool:
                outcome = outcome_for(record, S.COMPLETED, output=f"out-{record.execution_id}")
                return (await completer.record_outcomes([outcome], T0 + 1))[0]

            def cancels(chosen: Sequence[str]) -> Work[list[ExecutionRecord | None]]:
                async def cancel(storage: DurableStorage) -> list[ExecutionRecord | None]:
                    return list(
                        await asyncio.gather(
                            *(
                                storage.cancel_execution(i, now_ms=T0 + 1, error=ERROR_2)
                                for i in chosen
                            )
                        )
                    )

                return cancel

            loop = asyncio.get_running_loop()
            with ThreadPoolExecutor(1) as pool:
                in_thread = loop.run_in_executor(pool, h.run_in_thread(cancels(ids[60:])))
                in_loop = cancels(ids[:60])(canceller)
                completions = asyncio.gather(*(complete(r) for r in claimed))
                cancelled_in_loop, cancelled_in_thread, applied = await asyncio.gather(
                    in_loop, in_thread, completions
                )
            cancel_results = dict(zip(ids, cancelled_in_loop + cancelled_in_thread, strict=True))
            await h.refresh()
            for execution_id, was_applied in zip(ids, applied, strict=True):
                _check_race(h[execution_id], was_applied, cancel_results[execution_id])
            lost = sorted(i for i, ok in zip(ids, applied, strict=True) if not ok)
            flagged = await h.storage.claim_cancellations(executor_id=EXECUTOR_1, limit=1_000)
            assert sorted(flagged) == lost, (flagged, lost)

        self.run_scenario(body)

    def test_concurrent_closers_close_each_execution_once(self) -> None:
        """Concurrent closers close every finished child once; the parent counts them all."""

        async def body(h: Harness) -> None:
            child_ids = [f"cl{n:02d}" for n in range(40)]
            await h.start_parent("cl", child_ids)
            for execution_id in child_ids:  # cancelled children wait for the closers
                await h.storage.cancel_execution(execution_id, now_ms=T0 + 1, error=ERROR_1)
            closed = await _all_at_once(h, await _storages(h), 16, _closer)
            assert sum(closed) == 40, closed
            await h.refresh()
            assert_fields(
                h["cl"],
                status=S.WAITING_FOR_CHILDREN,
                unfinished_children=0,
                failed_children=40,
            )
            assert all(h[c].close_state is CloseState.CLOSED for c in child_ids)

        self.run_scenario(body)

    def test_concurrent_outcomes_close_their_children_once(self) -> None:
        """Outcomes recorded at once, each closing children of one parent (and one of them a
        child with its own child, left for the closers), count each child in the parent once."""

        async def body(h: Harness) -> None:
            child_ids = [f"co{n:02d}" for n in range(40)]
            await h.start_parent("co", child_ids)
            children = await h.claim_ids(*child_ids, now_ms=T0 + 1)
            await h.spawn(children[0], ["co00-k"], now_ms=T0 + 1)
            assert await h.claim_parents((CHILD_TASK,), now_ms=T0 + 1) == []  # its child runs
            outcomes = [
                outcome_for(c, S.FAILED, error=ERROR_1)
                if n % 4 == 1
                else outcome_for(c, S.COMPLETED, output="x")
                for n, c in enumerate(children[1:], start=1)
            ]
            slices = [outcomes[n::13] for n in range(13)]  # three outcomes a call

            def writer(n: int) -> Work[list[bool]]:
                async def write(storage: DurableStorage) -> list[bool]:
                    return await storage.record_outcomes(slices[n], T0 + 2)

                return write

            storages = await _storages(h)
            results = await _all_at_once(h, storages, 13 - _THREADS, writer)
            assert [len(r) for r in results] == [len(s) for s in slices], results
            assert all(all(r) for r in results), results
            await h.refresh()
            assert_fields(h["co"], unfinished_children=1, failed_children=10)
            assert all(h[c].close_state is CloseState.CLOSED for c in child_ids[1:])

        self.run_scenario(body)

    def test_concurrent_parent_claims_never_share_a_parent(self) -> None:
        """Concurrent advance claims hand out each parent once."""

        async def body(h: Harness) -> None:
            parent_ids = [f"pp{n:02d}" for n in range(16)]
            await h.insert(*(new_execution(p, PARENT_TASK) for p in parent_ids))
            parents = await h.claim((PARENT_TASK,))
            spawns = [
                outcome_for(
                    p, S.WAITING_FOR_CHILDREN, children=[child_of(p, f"{p.execution_id}c", 0)]
                )
                for p in parents
            ]
            assert await h.record(*spawns) == [True] * 16
            children = await h.claim((CHILD_TASK,))
            done = [outcome_for(c, S.COMPLETED, output="x") for c in children]
            assert await h.record(*done) == [True] * 16  # closed by their outcomes
            assert (await h.close_all())[0] == 0
            claims = await _all_at_once(h, await _storages(h), 24, _parent_claimer)
            owners, duplicates = _owners(claims)
            assert duplicates == [], f"claimed more than once: {sorted(set(duplicates))}"
            assert sorted(owners) == parent_ids, sorted(owners)

        self.run_scenario(body)

    def test_concurrent_inserts_with_one_idempotency_key(self) -> None:
        """Concurrent inserts under one idempotency key store one execution, seen by all."""

        async def body(h: Harness) -> None:
            results = await _all_at_once(h, await _storages(h), 16, _inserter)
            winners = {ids[0] for ids in results}
            assert len(winners) == 1, results
            assert all(len(ids) == 1 for ids in results), results
            candidates = [f"idem{n:02d}" for n in range(16 + _THREADS)]
            assert ids_of(await h.storage.get_executions(candidates)) == sorted(winners)

        self.run_scenario(body)


def _check_race(record: ExecutionRecord, applied: bool, cancelled: ExecutionRecord | None) -> None:
    """The outcome applied and the cancellation found it finished, or the reverse."""
    assert cancelled is not None
    assert cancelled.status is record.status, (record, cancelled)
    if applied:
        assert_fields(record, status=S.COMPLETED, output=f"out-{record.execution_id}", error=None)
    else:
        assert_fields(
            record,
            status=S.CANCELLED,
            error=ERROR_2,
            executor_id=EXECUTOR_1,
            stop_requested=True,
        )
