"""Middleware: hooks around each enqueue and around each attempt of a run.

``DurableExecutor(storage, middleware=[outer, inner])``. Each middleware has two async hooks,
each given what happens and ``call_next``, the rest of the chain; it calls ``call_next`` (or
not, to refuse), and sees what it returns or raises::

    class Timing(BaseMiddleware):
        async def attempt(self, attempt, call_next):
            started = time.perf_counter()
            try:
                return await call_next()
            finally:
                metrics.record(attempt.task_id, time.perf_counter() - started)

- :meth:`Middleware.enqueue` wraps one ``enqueue_task`` / ``enqueue_tasks`` call: it gets the
  :class:`EnqueueRequest` of every execution to enqueue and returns their handles. It may
  replace requests (``request.with_attributes(...)``, to carry a trace context or a tenant)
  before calling on; raising before ``call_next`` stores nothing.
- :meth:`Middleware.attempt` wraps one attempt, input validation included, in the process that
  runs it: it gets an :class:`Attempt` (the task, the :class:`~durable_execution.TaskContext`,
  the input) and returns the run's result, or lets its exception through. What it returns is
  the result; what it raises is the attempt's failure (retried like any other exception unless
  it is a non-retryable :class:`~durable_execution.DurableExecutionError`). It must let
  :class:`asyncio.CancelledError` through: that is how cancellation and timeouts stop a run.
  Its time counts within the task's ``timeout_ms``. ``attempt.child_attributes`` adds
  attributes to the children this attempt creates (to link them to the attempt).

The first middleware of the list is the outermost: its hooks see a call first and its result
last. Children created by a parent's run are not enqueues (they are part of the parent's
outcome): they reach middleware only through their attempts. With no middleware, the executor
calls straight through, at no cost.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from durable_execution.context import TaskContext

if TYPE_CHECKING:
    from durable_execution.handle import DurableTaskHandle
    from durable_execution.task import DurableTask

__all__ = [
    "Attempt",
    "AttemptNext",
    "BaseMiddleware",
    "EnqueueNext",
    "EnqueueRequest",
    "Middleware",
]


@dataclasses.dataclass(slots=True)
class EnqueueRequest:
    """One execution an enqueue call is about to store, as middleware sees it.

    Treat it as read-only and pass on replaced copies (:meth:`with_attributes`,
    ``dataclasses.replace``): the caller's requests are not yours to change. (Not a frozen
    dataclass only because one is made per enqueued execution, and freezing costs.)
    """

    task: DurableTask[Any, Any]
    input: Any
    attributes: Mapping[str, Any]
    """The execution's attributes as the caller gave them (an empty mapping for none)."""
    delay_ms: int
    priority: int
    idempotency_key: str | None

    @property
    def task_id(self) -> str:
        return self.task.id

    def with_attributes(self, attributes: Mapping[str, Any]) -> EnqueueRequest:
        """A copy whose attributes are these, over the current ones key by key."""
        return dataclasses.replace(self, attributes={**self.attributes, **attributes})


@dataclasses.dataclass(slots=True)
class Attempt:
    """One attempt of a run, as middleware sees it."""

    task: DurableTask[Any, Any]
    ctx: TaskContext
    """The context the run function gets: ids, ``attempt`` number, ``attributes``..."""
    input: Any
    """The input as stored (before the task's validation)."""
    child_attributes: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Attributes for the children this attempt creates, over the parent's key by key."""

    @property
    def task_id(self) -> str:
        return self.task.id


EnqueueNext = Callable[[Sequence[EnqueueRequest]], Awaitable[list["DurableTaskHandle[Any]"]]]
AttemptNext = Callable[[], Awaitable[Any]]


@runtime_checkable
class Middleware(Protocol):
    """The two hooks every middleware has (subclass :class:`BaseMiddleware` to write one)."""

    async def enqueue(
        self, requests: Sequence[EnqueueRequest], call_next: EnqueueNext
    ) -> list[DurableTaskHandle[Any]]:
        """Around one enqueue call; returns the handles, in the order of the requests."""
        ...

    async def attempt(self, attempt: Attempt, call_next: AttemptNext) -> Any:
        """Around one attempt; returns the run's result."""
        ...


class BaseMiddleware:
    """A middleware whose hooks call straight through: override the ones you need."""

    async def enqueue(
        self, requests: Sequence[EnqueueRequest], call_next: EnqueueNext
    ) -> list[DurableTaskHandle[Any]]:
        return await call_next(requests)

    async def attempt(self, attempt: Attempt, call_next: AttemptNext) -> Any:
        return await call_next()


def chain_enqueue(
    middleware: Sequence[Middleware], core: EnqueueNext
) -> Callable[[Sequence[EnqueueRequest]], Awaitable[list[DurableTaskHandle[Any]]]]:
    """``core`` wrapped in every middleware's ``enqueue`` hook, the first outermost."""
    call = core
    for layer in reversed(middleware):
        call = _enqueue_layer(layer, call)
    return call


def _enqueue_layer(layer: Middleware, call_next: EnqueueNext) -> EnqueueNext:
    async def call(requests: Sequence[EnqueueRequest]) -> list[DurableTaskHandle[Any]]:
        return await layer.enqueue(requests, call_next)

    return call


async def run_attempt(middleware: Sequence[Middleware], attempt: Attempt, core: AttemptNext) -> Any:
    """Run ``core`` inside every middleware's ``attempt`` hook, the first outermost."""
    call = core
    for layer in reversed(middleware):
        call = _attempt_layer(layer, attempt, call)
    return await call()


def _attempt_layer(layer: Middleware, attempt: Attempt, call_next: AttemptNext) -> AttemptNext:
    async def call() -> Any:
        return await layer.attempt(attempt, call_next)

    return call
