"""Durations given on the command line: ``90s``, ``15m``, ``1h``, ``7d``, ``2w``, or several
together (``1h30m``)."""

from __future__ import annotations

import datetime as dt
import re

__all__ = ["parse_duration"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+)([smhdw])")


def parse_duration(text: str) -> dt.timedelta:
    """The duration ``text`` writes; ``ValueError`` for anything else (or zero)."""
    compact = text.strip().lower()
    parts = _PART.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise ValueError(
            f"Invalid duration {text!r}: use a number and a unit (s, m, h, d, w), e.g. 30m, "
            "1h, 7d or 1h30m"
        )
    total = sum(int(n) * _UNITS[u] for n, u in parts)
    if total == 0:
        raise ValueError(f"Invalid duration {text!r}: it must be longer than zero")
    return dt.timedelta(seconds=total)
