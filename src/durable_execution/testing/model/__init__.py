"""Model-based tests of the storage contract, with Hypothesis' stateful testing.

:func:`run_storage_model` drives one real storage with random sequences of operations from
three simulated executors (inserts, claims, renewals, outcomes, stale and forged outcomes,
parents moving on, closures, cancellations, expiries, releases, a clock that moves) and, after
every step, compares every execution the storage holds with a pure model of the contract
(:class:`~durable_execution.testing.model.spec.ModelStore`, built on
:mod:`durable_execution.storage.transitions`) and checks invariants that hold whatever the
model says (:mod:`~durable_execution.testing.model.checks`). Hypothesis then shrinks a failing
sequence to a short one.

Needs ``hypothesis`` (the ``dev`` extra); importing :mod:`durable_execution.testing` does not
import this package.
"""

from durable_execution.testing.model.machine import StorageModelMachine
from durable_execution.testing.model.run import EmptyStorage, run_storage_model
from durable_execution.testing.model.spec import ModelStore

__all__ = ["EmptyStorage", "ModelStore", "StorageModelMachine", "run_storage_model"]
