"""Conformance of heartbeat leases: short leases under a backstop, their renewal, the count of
lease expiries with its crash limit, and the claim of suspects one at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace

from durable_execution.errors import DurableExecutionErrorInfo, DurableExecutionErrorType
from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.protocol import DurableStorage
from durable_execution.storage.records import CloseState, ExecutionRecord, NewExecution
from durable_execution.storage.transitions import SUSPECT_LEASE_EXPIRIES
from durable_execution.testing.base import ConformanceBase
from durable_execution.testing.concurrency import _all_at_once, _storages
from durable_execution.testing.harness import (
    CHILD_TASK,
    ERROR_1,
    EXECUTOR_1,
    EXECUTOR_2,
    LEASES,
    T0,
    TASK_A,
    TASK_B,
    Harness,
    assert_fields,
    ids_of,
    new_execution,
    outcome_for,
)

__all__ = ["LeaseConformance"]

_LEASE = 1_000


def _crashed(record: ExecutionRecord, expiries: int) -> DurableExecutionErrorInfo:
    """The error :func:`~durable_execution.storage.transitions.crashed_error` writes, word for
    word (the backends that write it in SQL must agree)."""
    return DurableExecutionErrorInfo(
        message=(
            f"Task {record.task_id} ({record.execution_id}) crashed: its executor died "
            f"{expiries} times while running it (its lease expired each time); it is not "
            "run again"
        ),
        error_type=DurableExecutionErrorType.CRASHED,
        is_retryable=False,
    )


def _inserted_claimed(execution_id: str, lease_ms: int, timeout_ms: int | None) -> NewExecution:
    return replace(
        new_execution(execution_id),
        claimed_by=EXECUTOR_1,
        claim_lease_ms=lease_ms,
        claim_timeout_ms=timeout_ms,
    )


async def _expire_times(h: Harness, execution_id: str, times: int, start: int) -> int:
    """Claim ``execution_id`` (the only ready one of its task) and let its lease expire,
    ``times`` times from ``start``; returns the time after the last expiry."""
    now = start
    for _ in range(times):
        await h.claim_ids(execution_id, now_ms=now)
        now += LEASES[h[execution_id].task_id] + 1
        assert await h.expire(now_ms=now) == [execution_id]
    return now


class LeaseConformance(ConformanceBase):
    """Short leases, renewals, lease expiries counted, suspects claimed one at a time."""

    __test__ = False

    def test_a_claim_with_a_lease_gets_it_under_the_backstop(self) -> None:
        """``expires_at = now + lease_ms`` never past ``timeout_at = now + backstop``; without
        ``lease_ms`` the lease is the backstop."""

        async def body(h: Harness) -> None:
            await h.insert(new_execution("hl-a", TASK_A), new_execution("hl-b", TASK_B))
            a, b = await h.claim(now_ms=T0 + 5, lease_ms=_LEASE)
            for record in (a, b, h["hl-a"], h["hl-b"]):
                backstop = LEASES[record.task_id]
                assert_fields(
                    record,
                    status=S.RUNNING,
                    started_at_ms=T0 + 5,
                    expires_at_ms=T0 + 5 + _LEASE,
                    timeout_at_ms=T0 + 5 + backstop,
                    lease_expiries=0,
                )
            await h.insert(new_execution("hl-long", TASK_A), new_execution("hl-old", TASK_B))
            (long,) = await h.claim((TASK_A,), now_ms=T0 + 7, lease_ms=LEASES[TASK_A] + 1)
            assert_fields(long, expires_at_ms=T0 + 7 + LEASES[TASK_A])  # capped
            (old,) = await h.claim((TASK_B,), now_ms=T0 + 9)
            backstop_b = T0 + 9 + LEASES[TASK_B]
            assert_fields(old, expires_at_ms=backstop_b, timeout_at_ms=backstop_b)

        self.run_scenario(body)

    def test_an_insert_claimed_gets_its_lease_under_its_backstop(self) -> None:
        """``claim_timeout_ms`` is the backstop of an execution inserted claimed; without it
        the lease is the backstop; a lease longer than the backstop is capped."""

        async def body(h: Harness) -> None:
            await h.insert(
                _inserted_claimed("hi-a", 100, 5_000),
                _inserted_claimed("hi-b", 300, None),
                _inserted_claimed("hi-c", 900, 400),
                now_ms=T0 + 3,
            )
            assert_fields(h["hi-a"], expires_at_ms=T0 + 103, timeout_at_ms=T0 + 5_003)
            assert_fields(h["hi-b"], expires_at_ms=T0 + 303, timeout_at_ms=T0 + 303)
            assert_fields(h["hi-c"], expires_at_ms=T0 + 403, timeout_at_ms=T0 + 403)
            assert await h.renew(h["hi-a"], now_ms=T0 + 50, lease_ms=100) == [True]
            assert_fields(h["hi-a"], expires_at_ms=T0 + 150)

        self.run_scenario(body)

    def test_renewal_extends_the_lease_up_to_the_backstop(self) -> None:
        """A renewal sets ``expires_at = now + lease_ms``, never past ``timeout_at``, and
        changes nothing else; it may be renewed at the very end of its lease."""

        async def body(h: Harness) -> None:
            await h.insert(new_execution("rn-a"), new_execution("rn-b", TASK_B))
            a, b = await h.claim(now_ms=T0, lease_ms=_LEASE)
            before = h["rn-a"]
            assert await h.renew(a, b, now_ms=T0 + _LEASE, lease_ms=_LEASE) == [True, True]
            expected = {
                name: getattr(before, name) for name in ("lease_token", "updated_at_ms", "status")
            }
            assert_fields(h["rn-a"], expires_at_ms=T0 + 2 * _LEASE, **expected)
            assert_fields(h["rn-b"], expires_at_ms=T0 + 2 * _LEASE)
            long = LEASES[TASK_A]  # from T0 + 2 * _LEASE: past the backstop
            assert await h.renew(a, now_ms=T0 + 2 * _LEASE, lease_ms=long) == [True]
            assert_fields(h["rn-a"], expires_at_ms=T0 + LEASES[TASK_A])  # the backstop
            assert await h.renew(a, now_ms=T0 + LEASES[TASK_A], lease_ms=_LEASE) == [True]
            assert_fields(h["rn-a"], expires_at_ms=T0 + LEASES[TASK_A])
            assert await h.expire(now_ms=T0 + LEASES[TASK_A]) == ["rn-b"]
            assert await h.expire(now_ms=T0 + LEASES[TASK_A] + 1) == ["rn-a"]
            assert await h.renew(now_ms=T0, lease_ms=_LEASE) == []

        self.run_scenario(body)

    def test_renewal_is_refused_once_the_claim_is_lost(self) -> None:
        """Refused: an expired lease (expired by the clock alone, or taken back), another
        owner, another token, a cancelled, finished or released execution, an unknown id."""

        async def body(h: Harness) -> None:
            ids = ("rf-late", "rf-taken", "rf-owner", "rf-cancel", "rf-done", "rf-gone", "rf-ok")
            await h.insert(*(new_execution(i) for i in ids))
            claims = {r.execution_id: r for r in await h.claim(now_ms=T0, lease_ms=_LEASE)}
            late, taken, owner, cancel, done, gone, ok = (claims[i] for i in ids)
            await h.cancel("rf-cancel", now_ms=T0 + 1)
            await h.finish(done, S.COMPLETED, output="x", now_ms=T0 + 1)
            assert await h.release(("rf-gone", gone.lease_token), now_ms=T0 + 1) == [True]
            assert await h.renew(ok, now_ms=T0 + 2, lease_ms=3 * _LEASE) == [True]
            refused = await h.renew(
                late, now_ms=T0 + _LEASE + 1, lease_ms=_LEASE
            )  # expired by now, though nobody took it back yet
            assert refused == [False]
            assert_fields(h["rf-late"], status=S.RUNNING, expires_at_ms=T0 + _LEASE)
            expired = await h.expire(now_ms=T0 + _LEASE + 1)
            assert sorted(expired) == ["rf-late", "rf-owner", "rf-taken"], expired
            retaken = await h.claim(now_ms=T0 + _LEASE + 2, executor_id=EXECUTOR_2)
            (again,) = [r for r in retaken if r.execution_id == "rf-taken"]
            results = await h.renew(
                taken,  # its old token
                (owner.execution_id, owner.lease_token),
                cancel,
                done,
                gone,
                ("nope", 1),
                ok,
                (again.execution_id, again.lease_token),  # EXECUTOR_2's
                now_ms=T0 + _LEASE + 3,
                lease_ms=_LEASE,
            )
            assert results == [False, False, False, False, False, False, True, False], results
            assert_fields(h["rf-taken"], expires_at_ms=again.expires_at_ms)
            assert await h.renew(
                again, now_ms=T0 + _LEASE + 3, lease_ms=_LEASE, executor_id=EXECUTOR_2
            ) == [True]
            assert_fields(h["rf-taken"], expires_at_ms=T0 + 2 * _LEASE + 3)

        self.run_scenario(body)

    def test_a_renewed_lease_expires_at_its_new_end(self) -> None:
        """Expiry follows the renewed lease end, not the one the claim set."""

        async def body(h: Harness) -> None:
            await h.insert(new_execution("re-a"), new_execution("re-b"))
            a, _ = await h.claim(now_ms=T0, lease_ms=_LEASE)
            assert await h.renew(a, now_ms=T0 + 500, lease_ms=_LEASE) == [True]
            assert await h.expire(now_ms=T0 + _LEASE + 1) == ["re-b"]
            assert await h.expire(now_ms=T0 + 500 + _LEASE) == []
            assert await h.expire(now_ms=T0 + 501 + _LEASE) == ["re-a"]

        self.run_scenario(body)

    def test_concurrent_renewals_and_expiries_never_bring_an_expired_lease_back(self) -> None:
        """Renewals at the last moment of the leases race expiries just past it, from many
        storage objects and threads: each lease is either renewed (and then never expired)
        or expired (and then every renewal of it refused), never both."""

        async def body(h: Harness) -> None:
            ids = [f"race{i:02d}" for i in range(24)]
            await h.insert(*(new_execution(i) for i in ids))
            claims = await h.claim(now_ms=T0, lease_ms=_LEASE)
            leases = [(r.execution_id, r.lease_token) for r in claims]
            storages = await _storages(h)

            def work(n: int) -> Callable[[DurableStorage], Awaitable[tuple[str, list[str]]]]:
                async def renew(storage: DurableStorage) -> tuple[str, list[str]]:
                    renewed = await storage.renew_leases(
                        executor_id=EXECUTOR_1, leases=leases, now_ms=T0 + _LEASE, lease_ms=_LEASE
                    )
                    return "renewed", [i for (i, _), ok in zip(leases, renewed, strict=True) if ok]

                async def expire(storage: DurableStorage) -> tuple[str, list[str]]:
                    expired: list[str] = []
                    for _ in range(len(ids)):
                        batch = await storage.expire_leases(now_ms=T0 + _LEASE + 1, limit=3)
                        if not batch:
                            break
                        expired.extend(batch)
                        await asyncio.sleep(0)
                    return "expired", expired

                return renew if n % 2 else expire

            results = await _all_at_once(h, storages, 8, work)
            renewed = {i for kind, found in results if kind == "renewed" for i in found}
            expired_lists = [found for kind, found in results if kind == "expired"]
            expired = [i for found in expired_lists for i in found]
            assert len(expired) == len(set(expired)), f"expired twice: {sorted(expired)}"
            assert not renewed & set(expired), f"renewed and expired: {renewed & set(expired)}"
            assert renewed | set(expired) == set(ids)
            await h.refresh()
            for execution_id, token in leases:
                if execution_id in renewed:
                    assert_fields(
                        h[execution_id],
                        status=S.RUNNING,
                        lease_token=token,
                        expires_at_ms=T0 + 2 * _LEASE,
                        lease_expiries=0,
                    )
                else:
                    assert_fields(h[execution_id], status=S.READY, lease_expiries=1)
                    assert h[execution_id].lease_token > token

        self.run_scenario(body)

    def test_expiries_are_counted_and_release_and_retries_are_not(self) -> None:
        """Each expired lease counts; a release, a retry or a finished run does not."""

        async def body(h: Harness) -> None:
            await h.insert(new_execution("ct"))
            now = await _expire_times(h, "ct", 2, T0)
            assert_fields(h["ct"], status=S.READY, lease_expiries=2, retry_attempts=0)
            (claimed,) = await h.claim_ids("ct", now_ms=now)
            assert await h.release(("ct", claimed.lease_token), now_ms=now) == [True]
            (claimed,) = await h.claim_ids("ct", now_ms=now)
            retry = outcome_for(claimed, S.READY, error=ERROR_1, start_at_ms=now)
            assert await h.record(retry, now_ms=now) == [True]
            (claimed,) = await h.claim_ids("ct", now_ms=now)
            await h.finish(claimed, S.COMPLETED, output="x", now_ms=now)
            assert_fields(h["ct"], status=S.COMPLETED, lease_expiries=2, retry_attempts=1)

        self.run_scenario(body)

    def test_the_last_allowed_expiry_fails_the_execution_as_crashed(self) -> None:
        """With ``max_lease_expiries=3`` the third expiry fails the execution, not retryable,
        with the ``crashed`` error; a root is closed at once, a child waits for its closure
        and counts as a failed child of its parent."""

        async def body(h: Harness) -> None:
            await h.insert(new_execution("cr-root"))
            now = await _expire_times(h, "cr-root", 2, T0)
            (claimed,) = await h.claim_ids("cr-root", now_ms=now)
            assert await h.expire(now_ms=now + 1, max_lease_expiries=3) == []
            later = now + LEASES[TASK_A] + 1
            assert await h.expire(now_ms=later, max_lease_expiries=3) == ["cr-root"]
            assert_fields(
                h["cr-root"],
                status=S.FAILED,
                error=_crashed(claimed, 3),
                output=None,
                lease_expiries=3,
                retry_attempts=0,
                finished_at_ms=later,
                executor_id=None,
                expires_at_ms=None,
                close_state=CloseState.CLOSED,
            )
            assert h["cr-root"].lease_token > claimed.lease_token
            assert await h.renew(claimed, now_ms=later, lease_ms=_LEASE) == [False]
            assert await h.record(outcome_for(claimed, S.COMPLETED, output="late")) == [False]
            await h.start_parent("cr-p", ["cr-kid", "cr-ok"])
            (kid,) = await h.claim_ids("cr-kid")
            assert await h.expire(now_ms=T0 + LEASES[CHILD_TASK] + 1, max_lease_expiries=1) == [
                "cr-kid"
            ]
            assert_fields(
                h["cr-kid"],
                status=S.FAILED,
                error=_crashed(kid, 1),
                close_state=CloseState.READY,
            )
            assert (await h.close(now_ms=T0 + LEASES[CHILD_TASK] + 2)).closed == 1
            assert_fields(h["cr-p"], unfinished_children=1, failed_children=1)

        self.run_scenario(body)

    def test_suspects_are_claimed_within_the_limit_in_claim_order(self) -> None:
        """``max_suspects`` bounds the suspects (leases expired at least
        ``SUSPECT_LEASE_EXPIRIES`` times) among the claimed; the others are claimed as if the
        suspects skipped were not there; ``None`` claims them all."""

        async def body(h: Harness) -> None:
            await h.insert(*(new_execution(i) for i in ("su-1", "su-2", "su-3")))
            now = T0
            for cycle in range(SUSPECT_LEASE_EXPIRIES):
                claimed = await h.claim(now_ms=now)
                if cycle == SUSPECT_LEASE_EXPIRIES - 1:  # su-2 expires one time less
                    assert await h.release(("su-2", claimed[1].lease_token), now_ms=now)
                now += LEASES[TASK_A] + 1
                await h.expire(now_ms=now)
            await h.insert(new_execution("su-0"), new_execution("su-4"))
            assert [h[i].lease_expiries for i in ("su-1", "su-2", "su-3")] == [
                SUSPECT_LEASE_EXPIRIES,
                SUSPECT_LEASE_EXPIRIES - 1,
                SUSPECT_LEASE_EXPIRIES,
            ]
            # Claim order: su-0, su-4 (inserted at T0), su-2 (released), su-1, su-3 (expired).
            healthy = await h.claim(now_ms=now, max_suspects=0, limit=2)
            assert ids_of(healthy) == ["su-0", "su-4"]
            rest = await h.claim(now_ms=now, max_suspects=0)
            assert ids_of(rest) == ["su-2"]
            assert await h.claim(now_ms=now, max_suspects=0) == []
            await h.release(*((r.execution_id, r.lease_token) for r in healthy + rest), now_ms=now)
            # All released or expired at ``now``: claim order is the id order.
            one = await h.claim(now_ms=now, max_suspects=1)
            assert ids_of(one) == ["su-0", "su-1", "su-2", "su-4"]
            (three,) = await h.claim(now_ms=now, max_suspects=1)
            assert three.execution_id == "su-3"
            await h.release(*((r.execution_id, r.lease_token) for r in [*one, three]), now_ms=now)
            assert ids_of(await h.claim(now_ms=now, max_suspects=1, limit=1)) == ["su-0"]
            assert ids_of(await h.claim(now_ms=now, max_suspects=1, limit=2)) == ["su-1", "su-2"]
            assert ids_of(await h.claim(now_ms=now)) == ["su-3", "su-4"]

        self.run_scenario(body)

    def test_max_suspects_above_one_and_below_zero(self) -> None:
        """Two suspects allowed: both claimed; a negative limit is zero."""

        async def body(h: Harness) -> None:
            await h.insert(*(new_execution(i) for i in ("sx-1", "sx-2", "sx-3")))
            now = T0
            for _ in range(SUSPECT_LEASE_EXPIRIES):
                await h.claim(now_ms=now)
                now += LEASES[TASK_A] + 1
                await h.expire(now_ms=now)
            assert await h.claim(now_ms=now, max_suspects=-1) == []
            assert ids_of(await h.claim(now_ms=now, max_suspects=2)) == ["sx-1", "sx-2"]

        self.run_scenario(body)
