"""The exit codes of ``durable-execution``, for scripts.

- 0: done (``enqueue --wait``: the execution completed);
- 1: the execution finished without completing (failed, timed out, cancelled, ...);
- 2: a usage error (bad option, application or task not found, invalid input);
- 3: the command failed (the storage could not be reached, an unexpected error);
- 4: ``enqueue --wait --timeout``: still not finished when the timeout passed;
- 5: no execution has the id given (``show``, ``cancel``, ``retry``, ``wakeup``);
- 6: refused: the execution is not in a state the command applies to (``retry`` of a
  completed or unfinished execution, or of a child; ``cancel`` or ``wakeup`` of one that
  already finished otherwise).

A worker stopped by a second signal exits with 128 + the signal's number, as a shell reports.
"""

from __future__ import annotations

__all__ = [
    "COMPLETED",
    "FAILED",
    "NOT_FINISHED",
    "NOT_FOUND",
    "REFUSED",
    "UNSUCCESSFUL",
    "USAGE",
]

COMPLETED = 0
UNSUCCESSFUL = 1
USAGE = 2
FAILED = 3
NOT_FINISHED = 4
NOT_FOUND = 5
REFUSED = 6
