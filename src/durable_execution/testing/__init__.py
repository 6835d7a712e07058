"""Testing helpers for users of durable_execution.

:class:`StorageConformanceSuite` checks that a storage backend keeps the
:class:`~durable_execution.storage.DurableStorage` contract: subclass it in a pytest module.
Each optional ability (:mod:`durable_execution.storage.abilities`) has a part of its own, to
mix in beside it when the backend has the ability: :class:`TransactionalEnqueueConformance`.
"""

from durable_execution.testing.suite import StorageConformanceSuite
from durable_execution.testing.transactional_enqueue import TransactionalEnqueueConformance

__all__ = ["StorageConformanceSuite", "TransactionalEnqueueConformance"]
