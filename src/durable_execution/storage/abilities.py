"""Optional storage abilities: what a storage may do beyond the core :class:`DurableStorage`.

The core protocol (:mod:`durable_execution.storage.protocol`) is what every storage must do to
run executions. A feature that needs more asks for an *ability*: a small
:func:`~typing.runtime_checkable` protocol of its own, defined here, with a docstring stating
what must hold. A storage has an ability when it has the ability's methods (no registration,
no base class); the feature checks for it at the call with :func:`require`, which raises
:class:`~durable_execution.errors.UnsupportedByStorageError` naming the storage and the
ability. There is never a silent fallback: a caller who asked for an atomic enqueue must not
get a non-atomic one.

Abilities so far:

- :class:`TransactionalEnqueue`: insert executions inside a transaction the caller opened
  (``enqueue_task(..., connection=...)``); :class:`PostgresStorage
  <durable_execution.storage.postgres.PostgresStorage>` has it.

Adding an ability (listing, purging, waking sleeping executions, flow control, ...):

1. Here: a ``@runtime_checkable`` protocol named for what the storage can do, with as few
   methods as the feature needs, each a coroutine whose docstring states what must hold
   (atomicity, ordering, what is returned, which errors are raised); list it in ``__all__``
   and above.
2. In :mod:`durable_execution.testing`: a conformance part of its own (a
   :class:`~durable_execution.testing.base.ConformanceBase` subclass, with ``__test__ =
   False``, outside :class:`~durable_execution.testing.StorageConformanceSuite`), which a
   backend's test class mixes in only when the backend has the ability; see
   :class:`~durable_execution.testing.TransactionalEnqueueConformance`.
3. In each backend that has it: the methods, and the conformance part mixed into its tests.
4. At the call site (the executor): ``require(self.storage, TheAbility, "do what the user
   asked")``, then call the methods on what it returns (typed as the ability).
5. In the README's "Storage abilities": a line saying what the ability is for and who has it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar, cast, runtime_checkable

from durable_execution.errors import UnsupportedByStorageError
from durable_execution.storage.records import NewExecution

__all__ = ["TransactionalEnqueue", "require"]

AbilityT = TypeVar("AbilityT")


@runtime_checkable
class TransactionalEnqueue(Protocol):
    """Insert executions inside a transaction the caller opened and will end.

    This is what ``enqueue_task(..., connection=...)`` needs: the application writes its own
    rows and enqueues executions in one transaction, so both exist or neither does.
    """

    async def insert_executions_in_transaction(
        self, executions: Sequence[NewExecution], now_ms: int, *, connection: Any
    ) -> list[str]:
        """:meth:`DurableStorage.insert_executions <durable_execution.storage.DurableStorage.
        insert_executions>`, run inside ``connection``'s open transaction.

        ``connection`` is the caller's connection to the same store (for PostgreSQL, a psycopg
        ``AsyncConnection`` on the same database), with a transaction open. The storage neither
        commits nor rolls back: the executions become visible to other connections (and
        claimable, and the wake-up listeners are told) only when the caller commits; a
        rollback leaves nothing of them. Within the transaction everything else holds as for
        a plain insert: all or none, the ids returned in order (an idempotency key already
        stored, or repeated in the batch, returns the first execution's id), and a duplicate
        id raises :class:`~durable_execution.errors.DuplicateExecutionError` (the caller then
        rolls back).
        """
        ...


def require(storage: object, ability: Callable[..., AbilityT], action: str) -> AbilityT:
    """``storage``, typed as ``ability``, if it has that ability; else raise.

    ``ability`` is one of the protocols of this module and ``action`` says, for the error
    message, what was asked (``"enqueue inside the caller's transaction"``). Raises
    :class:`~durable_execution.errors.UnsupportedByStorageError` naming the storage and the
    ability when the storage lacks one of its methods.

    (``ability`` is typed as a callable rather than ``type[...]`` because mypy does not accept
    a protocol class where ``type[...]`` is expected.)
    """
    if not isinstance(ability, type):
        raise TypeError(f"Expected an ability protocol, got {ability!r}")
    if not isinstance(storage, ability):
        raise UnsupportedByStorageError(storage, ability.__name__, action)
    return cast(AbilityT, storage)
