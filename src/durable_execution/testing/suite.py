"""The storage conformance suite: every part in one class to subclass."""

from __future__ import annotations

from durable_execution.testing.attributes import AttributesConformance
from durable_execution.testing.cancellation import CancelExpireReadConformance
from durable_execution.testing.closure import ClosureConformance
from durable_execution.testing.concurrency import ConcurrencyConformance
from durable_execution.testing.dispatch import DirectDispatchConformance
from durable_execution.testing.inserts import InsertAndClaimConformance
from durable_execution.testing.leases import LeaseConformance
from durable_execution.testing.outcomes import OutcomeConformance
from durable_execution.testing.parents import ParentConformance
from durable_execution.testing.ranges import IntegerRangeConformance
from durable_execution.testing.settled import SettledChildrenConformance
from durable_execution.testing.successors import SuccessorConformance

__all__ = ["StorageConformanceSuite"]


class StorageConformanceSuite(
    InsertAndClaimConformance,
    OutcomeConformance,
    ParentConformance,
    SettledChildrenConformance,
    ClosureConformance,
    CancelExpireReadConformance,
    ConcurrencyConformance,
    DirectDispatchConformance,
    SuccessorConformance,
    AttributesConformance,
    LeaseConformance,
    IntegerRangeConformance,
):
    """Tests that a :class:`~durable_execution.storage.DurableStorage` keeps the contract.

    Subclass it in a pytest test module and implement :meth:`create_storage`; the subclass
    is collected as a test class (this base is not)::

        from durable_execution.testing import StorageConformanceSuite

        class TestMyStorage(StorageConformanceSuite):
            async def create_storage(self) -> DurableStorage:
                return MyStorage(fresh_empty_database())

            async def reconnect(self, storage: DurableStorage) -> DurableStorage:
                return MyStorage(storage.url)  # a second "process" on the same database

    Override :meth:`reconnect` when your storage objects can be several on one store (the
    concurrency tests then really use several connections), and :meth:`dispose` to clean up
    more than ``close()`` does (for example to drop the test database). Every test method is
    synchronous and runs its scenario with :func:`asyncio.run`: no pytest plugin or fixture
    is needed, and nothing sleeps (times are passed as ``now_ms``). For detailed assertion
    messages, call ``pytest.register_assert_rewrite("durable_execution.testing")`` in your
    ``conftest.py``.

    The optional abilities of :mod:`durable_execution.storage.abilities` are not part of this
    class: each has a part of its own (such as
    :class:`~durable_execution.testing.TransactionalEnqueueConformance`) to mix in as well
    when your storage has that ability.
    """

    __test__ = False
