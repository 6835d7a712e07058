"""Identifiers: execution ids (``te_…``), executor ids (``dx_…``) and task id rules."""

from __future__ import annotations

import os
import re
import time

__all__ = [
    "TASK_ID_PATTERN",
    "execution_id_floor",
    "new_execution_id",
    "new_executor_id",
    "validate_task_id",
]

TASK_ID_PATTERN = re.compile(r"[A-Za-z0-9_]{1,255}")


def new_execution_id() -> str:
    """A new execution id: ``te_`` + 12 hex digits of milliseconds + 20 random hex digits.

    The time prefix keeps ids roughly ordered by creation, which keeps B-tree inserts local.
    """
    return f"te_{int(time.time() * 1000):012x}{os.urandom(10).hex()}"


def execution_id_floor(ms: int) -> str:
    """The smallest execution id drawn at or after ``ms`` (milliseconds since the epoch): ids
    drawn earlier sort before it, ids drawn then or later sort at or after it."""
    return f"te_{max(ms, 0):012x}"


def new_executor_id() -> str:
    """A new executor id, unique per executor instance."""
    return f"dx_{os.urandom(8).hex()}"


def validate_task_id(task_id: object) -> str:
    """Return ``task_id`` if it is 1-255 characters of ``[A-Za-z0-9_]``; else raise ValueError."""
    if not isinstance(task_id, str) or TASK_ID_PATTERN.fullmatch(task_id) is None:
        raise ValueError(
            f"Invalid task id {task_id!r}: it must be 1 to 255 characters of A-Z, a-z, 0-9 and _"
        )
    return task_id
