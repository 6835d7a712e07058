"""Conformance of direct dispatch: executions inserted already claimed by their creator."""

from __future__ import annotations

import dataclasses

from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.storage.records import CloseState
from durable_execution.testing.base import ConformanceBase
from durable_execution.testing.harness import (
    CHILD_TASK,
    EXECUTOR_1,
    LEASES,
    PARENT_TASK,
    T0,
    TASK_A,
    Harness,
    assert_fields,
    child_of,
    new_execution,
    outcome_for,
)

__all__ = ["DirectDispatchConformance"]


class DirectDispatchConformance(ConformanceBase):
    """``NewExecution.claimed_by``: inserted ``running``, as if claimed at once."""

    __test__ = False

    def test_a_root_inserted_claimed_is_running_with_a_first_lease(self) -> None:
        """It is running for its claimer, with lease token 1, and no one else claims it."""

        async def body(h: Harness) -> None:
            new = dataclasses.replace(
                new_execution("dd-root", TASK_A), claimed_by=EXECUTOR_1, claim_lease_ms=1_234
            )
            assert await h.insert(new, now_ms=T0 + 5) == ["dd-root"]
            assert_fields(
                h["dd-root"],
                status=S.RUNNING,
                executor_id=EXECUTOR_1,
                lease_token=1,
                started_at_ms=T0 + 5,
                expires_at_ms=T0 + 5 + 1_234,
                close_state=CloseState.OPEN,
            )
            assert await h.claim(now_ms=T0 + 10) == []
            done = outcome_for(h["dd-root"], S.COMPLETED, output="out")
            assert await h.record(done, now_ms=T0 + 20) == [True]
            assert_fields(h["dd-root"], status=S.COMPLETED, output="out", lease_token=1)

        self.run_scenario(body)

    def test_an_execution_inserted_claimed_expires_like_a_claimed_one(self) -> None:
        """Its lease expires as any other: ready again, and the old token is refused."""

        async def body(h: Harness) -> None:
            new = dataclasses.replace(
                new_execution("dd-lost", TASK_A), claimed_by=EXECUTOR_1, claim_lease_ms=100
            )
            await h.insert(new, now_ms=T0)
            stale = outcome_for(h["dd-lost"], S.COMPLETED, output="late")
            assert await h.expire(now_ms=T0 + 100) == []
            assert await h.expire(now_ms=T0 + 101) == ["dd-lost"]
            assert_fields(h["dd-lost"], status=S.READY, executor_id=None, retry_attempts=0)
            assert await h.record(stale, now_ms=T0 + 102) == [False]
            (again,) = await h.claim(now_ms=T0 + 103)
            assert again.lease_token > 1

        self.run_scenario(body)

    def test_children_inserted_claimed_by_an_outcome(self) -> None:
        """Children of an applied outcome may be inserted claimed; a refused outcome inserts
        none of them."""

        async def body(h: Harness) -> None:
            await h.insert(new_execution("dd-parent", PARENT_TASK))
            (parent,) = await h.claim((PARENT_TASK,))
            lease = LEASES[CHILD_TASK]
            kids = [
                dataclasses.replace(
                    child_of(parent, f"dd-kid{i}", i), claimed_by=EXECUTOR_1, claim_lease_ms=lease
                )
                for i in range(2)
            ]
            wrong_token = outcome_for(
                parent, S.WAITING_FOR_CHILDREN, children=kids, lease_token=parent.lease_token + 5
            )
            assert await h.storage.record_outcomes([wrong_token], T0) == [False]
            assert await h.storage.get_executions(["dd-kid0", "dd-kid1"]) == []
            waiting = outcome_for(parent, S.WAITING_FOR_CHILDREN, children=kids)
            assert await h.record(waiting, now_ms=T0 + 3) == [True]
            for i in range(2):
                assert_fields(
                    h[f"dd-kid{i}"],
                    status=S.RUNNING,
                    executor_id=EXECUTOR_1,
                    lease_token=1,
                    started_at_ms=T0 + 3,
                    expires_at_ms=T0 + 3 + lease,
                    parent_execution_id="dd-parent",
                )
            assert await h.claim((CHILD_TASK,), now_ms=T0 + 4) == []

        self.run_scenario(body)

    def test_a_claimed_insert_under_a_used_idempotency_key_inserts_nothing(self) -> None:
        """The execution already stored under the key is returned and left as it was."""

        async def body(h: Harness) -> None:
            await h.insert(new_execution("dd-first", TASK_A, idempotency_key="dd-key"))
            second = dataclasses.replace(
                new_execution("dd-second", TASK_A, idempotency_key="dd-key"),
                claimed_by=EXECUTOR_1,
                claim_lease_ms=1_000,
            )
            assert await h.storage.insert_executions([second], T0 + 1) == ["dd-first"]
            assert await h.storage.get_executions(["dd-second"]) == []
            assert_fields(await h.get("dd-first"), status=S.READY, executor_id=None)

        self.run_scenario(body)
