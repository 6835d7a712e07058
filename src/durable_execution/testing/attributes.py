"""Conformance of attributes: the storage keeps each execution's attributes text as given, on
every path that inserts executions, and returns it with every read."""

from __future__ import annotations

import dataclasses

from durable_execution.status import DurableTaskExecutionStatus as S
from durable_execution.testing.base import ConformanceBase
from durable_execution.testing.harness import (
    COMPLETION_TASK,
    EXECUTOR_1,
    LEASES,
    PARENT_TASK,
    TASK_A,
    Harness,
    assert_fields,
    child_of,
    new_execution,
    outcome_for,
)

__all__ = ["AttributesConformance"]

TENANT = '{"tenant":"acme","trace":{"id":"ab12","sampled":true}}'
UNICODE = '{"who":"Zoë ✓","n":[1,2.5,null]}'


class AttributesConformance(ConformanceBase):
    """``NewExecution.attributes`` round-trips through inserts, outcomes and successors."""

    __test__ = False

    def test_roots_keep_their_attributes_text(self) -> None:
        """Inserted ready or claimed, with or without attributes: reads and claims return
        exactly the text given (``None`` stays ``None``)."""

        async def body(h: Harness) -> None:
            plain = dataclasses.replace(new_execution("at-1"), attributes=TENANT)
            keyed = dataclasses.replace(
                new_execution("at-2", idempotency_key="k-at"), attributes=UNICODE
            )
            claimed = dataclasses.replace(
                new_execution("at-3"),
                attributes=TENANT,
                claimed_by=EXECUTOR_1,
                claim_lease_ms=LEASES[TASK_A],
            )
            await h.insert(plain, keyed, claimed, new_execution("at-4"))
            for execution_id, text in (
                ("at-1", TENANT),
                ("at-2", UNICODE),
                ("at-3", TENANT),
                ("at-4", None),
            ):
                assert_fields(h[execution_id], attributes=text)
            records = await h.claim((TASK_A,), limit=10)
            assert {r.execution_id: r.attributes for r in records} == {
                "at-1": TENANT,
                "at-2": UNICODE,
                "at-4": None,
            }

        self.run_scenario(body)

    def test_children_completion_and_successor_keep_theirs(self) -> None:
        """Children inserted by an outcome, a completion task, and a successor: each keeps
        the attributes text it was given, independent of its parent's."""

        async def body(h: Harness) -> None:
            await h.insert(dataclasses.replace(new_execution("ap", PARENT_TASK), attributes=TENANT))
            (parent,) = await h.claim_ids("ap")
            children = [
                dataclasses.replace(child_of(parent, "ap-0", 0), attributes=UNICODE),
                child_of(parent, "ap-1", 1),
            ]
            waiting = outcome_for(parent, S.WAITING_FOR_CHILDREN, children=children)
            assert await h.record(waiting) == [True]
            assert_fields(h["ap"], attributes=TENANT)
            assert_fields(h["ap-0"], attributes=UNICODE)
            assert_fields(h["ap-1"], attributes=None)
            (_, step) = await h.claim_ids("ap-0", "ap-1")
            successor = dataclasses.replace(child_of(h["ap"], "ap-2", 2), attributes=TENANT)
            done = outcome_for(step, S.COMPLETED, output="o", successor=successor)
            assert await h.record(done) == [True]
            assert_fields(h["ap-2"], attributes=TENANT)

            await h.insert(
                dataclasses.replace(new_execution("aq", PARENT_TASK), attributes=UNICODE)
            )
            (lonely,) = await h.claim_ids("aq")
            completion = dataclasses.replace(
                child_of(lonely, "aq-fin", 0, task_id=COMPLETION_TASK, is_completion=True),
                attributes=UNICODE,
            )
            to_completion = outcome_for(
                lonely, S.WAITING_FOR_ON_RUN_AND_CHILDREN_COMPLETE, children=[completion]
            )
            assert await h.record(to_completion) == [True]
            assert_fields(h["aq-fin"], attributes=UNICODE, is_completion=True)

        self.run_scenario(body)
