"""The threads that run sync tasks: daemon threads, so a task that never returns cannot keep
the process alive, and a way to interrupt a call with an exception raised in its thread.

Why not :class:`concurrent.futures.ThreadPoolExecutor`: the interpreter joins its threads at
exit. A sync task that ignores its cancellation then kept the process alive after
``shutdown()`` returned, and a supervisor's SIGTERM did not end the worker. The threads here
are daemon threads: at exit the interpreter does not wait for them. A call still running then
is abandoned; its execution was given back (or recorded timed out) by the executor already,
and its late result is discarded.

Interrupting (:meth:`SyncCall.interrupt`) raises an exception inside the call's thread with
``PyThreadState_SetAsyncExc``, as Temporal's Python SDK does for activities. The exception is
raised at the thread's next bytecode boundary: a thread blocked in a C call (``time.sleep``,
a socket read, a lock) sees it only when that call returns, and code that catches it (a bare
``except``) can swallow it.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import queue
import threading
from collections.abc import Callable
from typing import Any

from durable_execution.errors import DurableExecutionError

__all__ = ["SyncCall", "TaskThreads"]


def _set_async_exc(thread_id: int, exc_type: type[BaseException] | None) -> int:
    """Raise ``exc_type`` in thread ``thread_id`` (``None``: clear a pending one); returns the
    number of threads affected."""
    exc = ctypes.py_object(exc_type) if exc_type is not None else None  # None: a NULL pointer
    return int(ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), exc))


class SyncCall:
    """One call of a sync function in a :class:`TaskThreads` thread; ``future`` holds its
    result. ``label`` names it in logs (the execution id)."""

    __slots__ = ("_fn", "_interrupted", "_lock", "_thread_id", "future", "label")

    def __init__(self, fn: Callable[[], Any], label: str) -> None:
        self._fn = fn
        self.label = label
        self.future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._lock = threading.Lock()
        self._thread_id: int | None = None  # while the call runs
        self._interrupted = False

    @property
    def running(self) -> bool:
        """Whether the call is running in its thread now."""
        return self._thread_id is not None

    def interrupt(self, exc_type: type[DurableExecutionError]) -> bool:
        """Raise ``exc_type()`` in the call's thread, once; False when the call is not
        running (not started, or over) or was interrupted already."""
        with self._lock:
            if self._thread_id is None or self._interrupted:
                return False
            self._interrupted = True
            return _set_async_exc(self._thread_id, exc_type) == 1

    def run(self, freed: Callable[[], None]) -> None:
        """Run the call in the current thread, call ``freed`` (the thread can take another
        call), then settle the future: whoever the result wakes finds the thread free."""
        if not self.future.set_running_or_notify_cancel():
            freed()
            return
        ok, value = False, None
        try:
            with self._lock:
                self._thread_id = threading.get_ident()
            ok, value = True, self._fn()
        except BaseException as exc:  # the call's own exception, or an interrupt
            value = exc
        finally:
            self._leave()
        freed()
        if ok:
            self.future.set_result(value)
        else:
            self.future.set_exception(value)

    def fail(self, exc: BaseException) -> None:
        """Settle the future with ``exc`` unless it is settled (an interrupt that arrived
        after the call returned, outside it)."""
        if not self.future.done():
            self.future.set_exception(exc)

    def _leave(self) -> None:
        """No interrupt may reach this thread after the call: stop taking them, and clear one
        sent but not raised yet. An interrupt raised in here is absorbed and we try again (at
        most one is ever sent)."""
        while True:
            try:
                with self._lock:
                    thread_id, self._thread_id = self._thread_id, None
                    if self._interrupted and thread_id is not None:
                        _set_async_exc(thread_id, None)
                return
            except DurableExecutionError:
                continue


def _label(call: SyncCall) -> str:
    return call.label


class TaskThreads:
    """Up to ``max_threads`` daemon threads, started on demand, running :class:`SyncCall` s."""

    def __init__(self, max_threads: int, name_prefix: str = "durable-task") -> None:
        self._max_threads = max_threads
        self._name_prefix = name_prefix
        self._jobs: queue.SimpleQueue[SyncCall | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._calls: set[SyncCall] = set()  # submitted and not over
        self._closed = False

    def submit(self, fn: Callable[[], Any], label: str) -> SyncCall:
        """Run ``fn()`` in a thread; the returned call's ``future`` gets its result."""
        call = SyncCall(fn, label)
        with self._lock:
            if self._closed:
                raise RuntimeError("the task threads were shut down")
            self._calls.add(call)
        call.future.add_done_callback(lambda _: self._forget(call))
        self._jobs.put(call)
        if not self._idle.acquire(blocking=False):
            self._add_thread()
        return call

    def running_calls(self) -> list[SyncCall]:
        """The calls running in a thread now."""
        with self._lock:
            return sorted((call for call in self._calls if call.running), key=_label)

    def running_labels(self) -> list[str]:
        """The labels of the calls running in a thread now."""
        return [call.label for call in self.running_calls()]

    def shutdown(self) -> None:
        """Let the threads go: idle ones end now, busy ones once their call returns. Calls
        not started yet are cancelled. Never waits."""
        with self._lock:
            self._closed = True
            threads = len(self._threads)
        while True:
            try:
                call = self._jobs.get_nowait()
            except queue.Empty:
                break
            if call is not None:
                call.future.cancel()
        for _ in range(threads):
            self._jobs.put(None)

    def _forget(self, call: SyncCall) -> None:
        with self._lock:
            self._calls.discard(call)

    def _add_thread(self) -> None:
        with self._lock:
            if len(self._threads) >= self._max_threads or self._closed:
                return
            thread = threading.Thread(
                target=self._work,
                name=f"{self._name_prefix}-{len(self._threads)}",
                daemon=True,
            )
            self._threads.append(thread)
        thread.start()

    def _work(self) -> None:
        while True:
            call = self._jobs.get()
            if call is None:
                return
            released = False

            def freed() -> None:
                nonlocal released
                released = True
                self._idle.release()

            try:
                call.run(freed)
            except BaseException as exc:  # an interrupt raised after the call, before _leave
                call.fail(exc)
            if not released:
                self._idle.release()
