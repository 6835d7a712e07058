"""The one check of integer options: every option of the executor, of a task, of an enqueue
and of the storages goes through :func:`check_int`, so they all refuse the same things
(``True``, floats, strings, out-of-range values) with the same message."""

from __future__ import annotations

__all__ = ["check_int"]


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
