"""A small thread-safe registry of wake-up listeners, shared by the storage backends."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from durable_execution.storage.records import WorkKind

__all__ = ["WakeUpListeners"]

_log = logging.getLogger("durable_execution.storage")


class WakeUpListeners:
    """Listeners called with each kind of work a committed change created."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: tuple[Callable[[WorkKind], None], ...] = ()

    def add(self, listener: Callable[[WorkKind], None]) -> Callable[[], None]:
        with self._lock:
            self._listeners = (*self._listeners, listener)

        def remove() -> None:
            with self._lock:
                self._listeners = tuple(x for x in self._listeners if x is not listener)

        return remove

    def notify(self, kinds: Iterable[WorkKind]) -> None:
        listeners = self._listeners
        if not listeners:
            return
        for kind in kinds:
            for listener in listeners:
                try:
                    listener(kind)
                except Exception:  # a listener must never break a storage operation
                    _log.exception("wake-up listener failed")
