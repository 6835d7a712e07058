"""The states of an executor, and what each one allows (as data, no I/O).

::

    NEW ──start()──▶ STARTED ──shutdown()──▶ SHUTTING_DOWN ──▶ SHUT_DOWN
     │                  ▲                                          │
     │                  └────────────────── start() ───────────────┤
     └───────────────────────── shutdown() ───────────────────────▶┘

What each state allows:

=====================================  ======  =======  =============  ===========
action                                 new     started  shutting down  shut down
=====================================  ======  =======  =============  ===========
define tasks, ``enqueue_task(s)``,     yes     yes      no (1)         no (1)
``get_task_handle``
read, wait for, cancel executions      yes     yes      yes            yes
(handles, ``get_execution``)
``use_storage``                        yes     no (2)   no (2)         yes
``start()``                            starts  no-op    waits, then    starts
                                                        starts again   again
``shutdown()``                         (3)     stops    waits          no-op
=====================================  ======  =======  =============  ===========

(1) :class:`~durable_execution.errors.ExecutorShutdownError`, until ``start()`` is called again.
(2) :class:`RuntimeError` (also while a start is in progress): the loops use the storage.
(3) Nothing runs yet: it only closes the storage the executor created itself.

Executions enqueued while the executor is new are stored and run once it starts (or on any
other executor of the storage that knows their task). A start after a shutdown runs with fresh
background loops, a fresh thread pool and a fresh shutdown event; the tasks stay registered.
"""

from __future__ import annotations

import enum

__all__ = ["ExecutorState"]


class ExecutorState(enum.Enum):
    """Where an executor is in its lifecycle (see the table in this module's docstring)."""

    NEW = "new"
    STARTED = "started"
    SHUTTING_DOWN = "shutting_down"
    SHUT_DOWN = "shut_down"

    @property
    def accepts_work(self) -> bool:
        """Whether tasks may be defined and executions enqueued or re-attached to."""
        return self in (ExecutorState.NEW, ExecutorState.STARTED)

    @property
    def runs(self) -> bool:
        """Whether the background loops may be running (the storage is then in use)."""
        return self in (ExecutorState.STARTED, ExecutorState.SHUTTING_DOWN)
