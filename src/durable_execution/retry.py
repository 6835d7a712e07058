"""Retry policies: how many attempts a task gets, which errors are retried, and the back-off.

:class:`RetryPolicy` is plain data with pure methods (no I/O, no clock): the executor asks it
whether a failed attempt is retried and how long the execution then waits. The wait is spent in
storage (the execution goes back to ``ready`` with a later start time), never in a held slot.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

from durable_execution.checks import MAX_DURATION_MS, MAX_RETRY_ATTEMPTS, check_int

__all__ = ["MAX_MULTIPLIER", "RetryOn", "RetryPolicy"]

MAX_MULTIPLIER = 1000.0
"""The largest ``multiplier`` of a :class:`RetryPolicy`."""

RetryOn: TypeAlias = (
    type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool] | None
)
"""Which errors a policy retries: exception types, a predicate on the exception, or ``None``
(every retryable error)."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a task retries: ``task(..., retry=RetryPolicy(max_attempts=5, base_delay_ms=100))``.

    Attempt ``n`` (``n >= 2``; ``ctx.attempt == n - 1``) starts
    ``min(max_delay_ms, base_delay_ms * multiplier ** (n - 2))`` ms after attempt ``n - 1``
    failed, give or take ``jitter`` of it: the first retry waits ``base_delay_ms``, the next
    ``base_delay_ms * multiplier``, and so on. The first attempt is not delayed.

    An error is retried only when attempts remain, the error is retryable (a
    ``DurableExecutionError(is_retryable=False)`` and a cancellation never are) and it matches
    ``retry_on``.
    """

    max_attempts: int = 3
    """Attempts in all, the first one included (1 = never retry): 1 to 1,000,001."""
    base_delay_ms: int = 1000
    """The wait before the first retry: 0 to 10 years."""
    multiplier: float = 2.0
    """Each retry waits this many times the previous wait: 1.0 (a fixed delay) to 1000."""
    max_delay_ms: int | None = None
    """The longest wait (``base_delay_ms`` to 10 years); ``None``: no bound but 10 years."""
    jitter: float = 0.0
    """A fraction (0 to 1) of each wait drawn at random to either side of it, so that executions
    failing together do not retry together; the result stays within ``[0, max_delay_ms]``."""
    retry_on: RetryOn = None
    """The errors retried: an exception type, a tuple of them (matched with ``isinstance``), or
    a predicate on the exception (an error it raises on counts as not retried). ``None``: every
    retryable error. A timeout is matched as a
    :class:`~durable_execution.DurableExecutionTimedOutError`."""

    def __post_init__(self) -> None:
        where = " of RetryPolicy"
        attempts, delay = MAX_RETRY_ATTEMPTS + 1, MAX_DURATION_MS
        check_int("max_attempts", self.max_attempts, minimum=1, maximum=attempts, where=where)
        check_int("base_delay_ms", self.base_delay_ms, minimum=0, maximum=delay, where=where)
        if self.max_delay_ms is not None:
            low = self.base_delay_ms
            check_int("max_delay_ms", self.max_delay_ms, minimum=low, maximum=delay, where=where)
        _check_fraction("multiplier", self.multiplier, 1.0, MAX_MULTIPLIER)
        _check_fraction("jitter", self.jitter, 0.0, 1.0)
        _check_retry_on(self.retry_on)

    @property
    def max_retries(self) -> int:
        """Retries after the first attempt: ``max_attempts - 1``."""
        return self.max_attempts - 1

    def retries(self, error: BaseException) -> bool:
        """Whether ``error`` matches ``retry_on`` (retryability and attempts aside)."""
        retry_on = self.retry_on
        if retry_on is None:
            return True
        if isinstance(retry_on, type | tuple):
            return isinstance(error, retry_on)
        try:
            return bool(retry_on(error))
        except Exception:  # a broken predicate must not lose the error it was asked about
            return False

    def delay_ms(self, retry: int, rand: Callable[[], float] = random.random) -> int:
        """The wait before retry ``retry`` (1 for the first retry, i.e. the second attempt).

        ``rand`` returns a float in ``[0, 1)``; it only matters with ``jitter``.
        """
        cap = MAX_DURATION_MS if self.max_delay_ms is None else self.max_delay_ms
        delay = float(min(cap, _scaled(self.base_delay_ms, self.multiplier, retry - 1)))
        if self.jitter:
            delay *= 1.0 + self.jitter * (2.0 * rand() - 1.0)
        return max(0, min(cap, round(delay)))


def _scaled(base: int, multiplier: float, exponent: int) -> float:
    if base == 0:
        return 0.0
    try:
        return base * multiplier ** max(0, exponent)
    except OverflowError:
        return math.inf


def _check_fraction(name: str, value: object, minimum: float, maximum: float) -> None:
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and minimum <= value <= maximum
    ):
        return
    raise ValueError(
        f"Invalid option {name}={value!r} of RetryPolicy: expected a number between "
        f"{minimum} and {maximum}"
    )


def _check_retry_on(retry_on: object) -> None:
    if retry_on is None or _is_exception_type(retry_on):
        return
    if isinstance(retry_on, tuple):
        if retry_on and all(_is_exception_type(t) for t in retry_on):
            return
    elif callable(retry_on) and not isinstance(retry_on, type):
        return
    raise ValueError(
        f"Invalid option retry_on={retry_on!r} of RetryPolicy: expected an exception type, "
        "a non-empty tuple of them, a predicate on the exception, or None"
    )


def _is_exception_type(value: object) -> bool:
    return isinstance(value, type) and issubclass(value, BaseException)
