"""Testing helpers for users of durable_execution.

:class:`StorageConformanceSuite` checks that a storage backend keeps the
:class:`~durable_execution.storage.DurableStorage` contract: subclass it in a pytest module.
"""

from durable_execution.testing.suite import StorageConformanceSuite

__all__ = ["StorageConformanceSuite"]
