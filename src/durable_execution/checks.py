"""The one check of integer options: every option of the executor, of a task, of an enqueue
and of the storages goes through :func:`check_int`, so they all refuse the same things
(``True``, floats, strings, out-of-range values) with the same message.

Every numeric option has an upper bound. The bounds of durations keep every time the storage
keeps (integer milliseconds since the epoch, a signed 64-bit integer in SQLite and
PostgreSQL) far inside its range: now (about 1.8e12) plus a delay, a pause before the attempt,
a timeout and a leeway, each at most :data:`MAX_DURATION_MS` (about 3.2e11), stays below 1e13,
while the column holds 9.2e18 (and Python's ``datetime`` reaches the year 9999 at 2.5e14).
"""

from __future__ import annotations

__all__ = [
    "MAX_DURATION_MS",
    "MAX_ITERATIONS",
    "MAX_PRIORITY",
    "MAX_RETRY_ATTEMPTS",
    "MIN_PRIORITY",
    "check_int",
]

MAX_DURATION_MS = 10 * 366 * 24 * 3600 * 1000
"""The longest duration any option or argument takes (``timeout_ms``, ``delay_ms``,
``sleep_ms_before_attempt``, ``expire_leeway_ms``, ...): 10 years of 366 days, in ms."""
MAX_RETRY_ATTEMPTS = 1_000_000
"""The most retries a task may ask for (``max_retry_attempts``)."""
MAX_ITERATIONS = 2**31 - 1
"""The most iterations a looping task may ask for (``max_iterations``): each iteration's index
among its loop's children is a signed 32-bit integer in PostgreSQL."""
MIN_PRIORITY = -(2**31)
"""The lowest ``priority`` of an enqueue: a signed 32-bit integer."""
MAX_PRIORITY = 2**31 - 1
"""The highest ``priority`` of an enqueue."""


def check_int(
    name: str,
    value: object,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    where: str = "",
) -> int:
    """``value`` when it is an ``int`` (not a ``bool``) within ``[minimum, maximum]``.

    Otherwise raise ``ValueError("Invalid option <name>=<value><where>: expected ...")``;
    ``where`` says whose option it is (`` for task 'a'``).
    """
    if isinstance(value, int) and not isinstance(value, bool) and _within(value, minimum, maximum):
        return value
    if minimum is not None and maximum is not None:
        bound = f" between {minimum} and {maximum}"
    elif minimum is not None:
        bound = f" >= {minimum}"
    elif maximum is not None:
        bound = f" <= {maximum}"
    else:
        bound = ""
    raise ValueError(f"Invalid option {name}={value!r}{where}: expected an integer{bound}")


def _within(value: int, minimum: int | None, maximum: int | None) -> bool:
    return (minimum is None or value >= minimum) and (maximum is None or value <= maximum)
