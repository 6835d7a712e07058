"""A future that is also a coroutine: what the executor's per-item calls return.

``asyncio.gather`` wraps each coroutine it is given in a task of its own: a task, three
callbacks through the event loop and the frames of the coroutines under it, for each item.
For a gather over thousands of waits or enqueues that was most of what they cost (figures in
docs/performance.md). A :class:`FutureCoroutine` is a future, resolved by whoever does the
work, that ``gather``, ``wait_for``, ``shield`` and ``as_completed`` use as it is, and also a
coroutine (``send``, ``throw``, ``close``), so that ``asyncio.create_task``,
and ``TaskGroup.create_task`` take it as they took a coroutine. It is made on the running
event loop: the calls that return one, called without a running loop, return a plain
coroutine instead.

The work starts when the call that returns it is made, not when the result is first
awaited. Cancelling it (or closing it, or throwing into it) gives the work up as far as it
can still be given up; each user says how far that is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

__all__ = ["FutureCoroutine"]

T = TypeVar("T")


class FutureCoroutine(asyncio.Future[T], Coroutine[Any, Any, T]):
    """A future that a task can also run as its coroutine (see the module docstring)."""

    __slots__ = ()

    def send(self, value: Any, /) -> Any:
        """One step of a task running this: hand the task this future to wait on while it is
        pending, then end with its result (or raise its error)."""
        if not self.done():
            self._asyncio_future_blocking = True
            return self
        raise StopIteration(self.result())

    def throw(
        self,
        typ: type[BaseException] | BaseException,
        val: BaseException | object = None,
        tb: TracebackType | None = None,
        /,
    ) -> Any:
        """The task running this was cancelled (or what it waited on failed): give the work
        up and raise what was thrown in."""
        if isinstance(typ, BaseException):
            error = typ
        elif isinstance(val, BaseException):
            error = val
        else:  # the older form: a class, and the argument to make it with
            error = typ() if val is None else typ(val)
        self.cancel()  # a no-op once done
        raise error.with_traceback(tb) if tb is not None else error

    def close(self) -> None:
        """Give the work up (as closing a coroutine stops it)."""
        self.cancel()
