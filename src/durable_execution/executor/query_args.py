"""The arguments of the executor's queries, checked and turned into what the storage takes
(no I/O): statuses, task ids, time ranges and attributes into an
:class:`~durable_execution.storage.inspection.ExecutionFilter`, and the opaque page cursor.

A cursor is the position where a page ended plus a digest of that position and of the
filters; a cursor that was edited, truncated, or used with other filters than those of the
page that returned it is refused with a ``ValueError`` (rather than silently listing from
somewhere else).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from durable_execution.checks import check_int
from durable_execution.ids import execution_id_floor
from durable_execution.status import DurableTaskExecutionStatus
from durable_execution.storage.inspection import (
    COUNT_KEYS,
    AttributeValue,
    CountKey,
    ExecutionFilter,
    ListPosition,
)

__all__ = [
    "MAX_PAGE_SIZE",
    "StatusArg",
    "check_count_keys",
    "check_page_size",
    "decode_cursor",
    "encode_cursor",
    "execution_filter",
]

MAX_PAGE_SIZE = 1000
"""The most executions one page of ``list_executions`` holds."""

StatusArg = DurableTaskExecutionStatus | str
"""A status, as the enum or its value (``"failed"``)."""

_STATUS_VALUES = ", ".join(s.value for s in DurableTaskExecutionStatus)
_CURSOR_VERSION = 2

CREATION_MARGIN_MS = 3_600_000
"""How much earlier than its ``created_at`` an execution's id may have been drawn, as far as
the creation filters go. An id is drawn when the execution is made (``new_execution_id``) and
``created_at`` stamped when it is stored, on the same clock, a few milliseconds later (longer
while an outcome writer retries through an outage of the storage). ``created_after`` narrows
a listing to the ids drawn from this much before it; an execution stored later than that
after its id was drawn is left out of such a listing (it has no other effect)."""

CLOCK_STEP_MARGIN_MS = 1_000
"""How much later than its ``created_at`` an execution's id may have been drawn (a clock
stepped back between the two), as far as the ``*_before`` filters go."""


def _status(value: object) -> DurableTaskExecutionStatus:
    if isinstance(value, DurableTaskExecutionStatus):
        return value
    if isinstance(value, str):
        try:
            return DurableTaskExecutionStatus(value)
        except ValueError:
            pass
    raise ValueError(f"Invalid status {value!r}: expected one of {_STATUS_VALUES}")


def _statuses(value: object) -> tuple[DurableTaskExecutionStatus, ...] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, str) else _iterable("status", value)
    return tuple(sorted({_status(item) for item in items}, key=lambda s: s.value))


def _iterable(name: str, value: object) -> list[object]:
    if not isinstance(value, Iterable) or isinstance(value, (bytes, Mapping)):
        raise ValueError(f"Invalid {name}={value!r}: expected one value or a list of them")
    return list(value)


def _task_ids(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, str) else _iterable("task_id", value)
    for item in items:
        if not isinstance(item, str) or not item:
            raise ValueError(f"Invalid task id {item!r}: expected a non-empty string")
    return tuple(sorted(set(items)))  # type: ignore[arg-type]


def _time_ms(name: str, value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise ValueError(
            f"Invalid {name}={value!r}: expected a timezone-aware datetime "
            "(such as datetime.now(timezone.utc))"
        )
    return int(value.timestamp() * 1000)


def _range(name: str, after: object, before: object) -> tuple[int | None, int | None]:
    after_ms = _time_ms(f"{name}_after", after)
    before_ms = _time_ms(f"{name}_before", before)
    if after_ms is not None and before_ms is not None and after_ms >= before_ms:
        raise ValueError(f"Invalid range: {name}_after must be earlier than {name}_before")
    return after_ms, before_ms


def _attributes(value: object) -> dict[str, AttributeValue] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"Invalid attributes={value!r}: expected a mapping")
    checked: dict[str, AttributeValue] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"Invalid attribute name {key!r}: expected a non-empty string")
        if not isinstance(item, (str, int)):  # bool is an int
            raise ValueError(
                f"Invalid value of attribute {key!r}: {item!r}; an attribute filter compares "
                "with a string, an integer or a boolean"
            )
        checked[key] = item
    return checked or None


def execution_filter(
    *,
    status: object = None,
    task_id: object = None,
    root_only: object = False,
    parent_execution_id: object = None,
    created_after: object = None,
    created_before: object = None,
    finished_after: object = None,
    finished_before: object = None,
    attributes: object = None,
) -> ExecutionFilter:
    """The filter of these arguments of ``list_executions``/``count_executions``; raises
    ``ValueError`` naming the first invalid one."""
    if not isinstance(root_only, bool):
        raise ValueError(f"Invalid root_only={root_only!r}: expected a bool")
    if parent_execution_id is not None and (
        not isinstance(parent_execution_id, str) or not parent_execution_id
    ):
        raise ValueError(
            f"Invalid parent_execution_id={parent_execution_id!r}: expected a non-empty string"
        )
    if root_only and parent_execution_id is not None:
        raise ValueError("root_only=True and parent_execution_id exclude each other")
    created = _range("created", created_after, created_before)
    finished = _range("finished", finished_after, finished_before)
    id_from, id_before = _id_bounds(created[0], created[1], finished[1])
    return ExecutionFilter(
        statuses=_statuses(status),
        task_ids=_task_ids(task_id),
        root_only=root_only,
        parent_execution_id=parent_execution_id,
        created_after_ms=created[0],
        created_before_ms=created[1],
        finished_after_ms=finished[0],
        finished_before_ms=finished[1],
        attributes=_attributes(attributes),
        id_from=id_from,
        id_before=id_before,
    )


def _id_bounds(
    created_after_ms: int | None, created_before_ms: int | None, finished_before_ms: int | None
) -> tuple[str | None, str | None]:
    """The range of ids that holds every execution of these time bounds: the primary key
    walks it, where an index of times would cost every write. An id is drawn before its
    execution is stored (``created_at``), which is before it finishes: an execution created
    or finished before a time has an id drawn before it; one created after a time has an id
    drawn after it less :data:`CREATION_MARGIN_MS` (and margins of
    :data:`CLOCK_STEP_MARGIN_MS` for a clock stepped back)."""
    id_from = None
    if created_after_ms is not None:
        id_from = execution_id_floor(created_after_ms - CREATION_MARGIN_MS)
    ends = [ms for ms in (created_before_ms, finished_before_ms) if ms is not None]
    id_before = execution_id_floor(min(ends) + CLOCK_STEP_MARGIN_MS) if ends else None
    return id_from, id_before


def check_page_size(limit: object) -> int:
    """``limit``, checked: an integer from 1 to :data:`MAX_PAGE_SIZE`."""
    return check_int("limit", limit, minimum=1, maximum=MAX_PAGE_SIZE)


def check_count_keys(by: object) -> tuple[CountKey, ...]:
    """``by`` of ``count_executions``, checked: distinct names among ``"task_id"`` and
    ``"status"``, in that order whatever the order given."""
    items = [by] if isinstance(by, str) else _iterable("by", by)
    for item in items:
        if item not in COUNT_KEYS:
            raise ValueError(f"Invalid by={by!r}: count by 'task_id' and/or 'status'")
    if len(set(items)) != len(items):
        raise ValueError(f"Invalid by={by!r}: a name is repeated")
    return tuple(key for key in COUNT_KEYS if key in items)


def _fingerprint(where: ExecutionFilter, position: ListPosition) -> str:
    text = json.dumps(
        [
            _CURSOR_VERSION,
            position,
            [s.value for s in where.statuses] if where.statuses is not None else None,
            where.task_ids,
            where.root_only,
            where.parent_execution_id,
            where.created_after_ms,
            where.created_before_ms,
            where.finished_after_ms,
            where.finished_before_ms,
            where.attributes_json(),
            where.id_from,
            where.id_before,
        ]
    )
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def encode_cursor(where: ExecutionFilter, position: ListPosition) -> str:
    """The opaque cursor of the page after ``position`` of the listing of ``where``."""
    data = json.dumps([_CURSOR_VERSION, position, _fingerprint(where, position)])
    return base64.urlsafe_b64encode(data.encode()).decode().rstrip("=")


def decode_cursor(where: ExecutionFilter, cursor: object) -> ListPosition | None:
    """The position a cursor of :func:`encode_cursor` holds (``None`` for no cursor); raises
    ``ValueError`` for anything else, or a cursor of a listing with other filters."""
    if cursor is None:
        return None
    invalid = ValueError(
        f"Invalid cursor {cursor!r}: pass the next_cursor of a page that list_executions "
        "returned, with the same filters"
    )
    if not isinstance(cursor, str) or not cursor:
        raise invalid
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        data: Any = json.loads(text)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid from None
    if not (
        isinstance(data, list)
        and len(data) == 3
        and data[0] == _CURSOR_VERSION
        and isinstance(data[1], str)
        and isinstance(data[2], str)
    ):
        raise invalid
    position: ListPosition = data[1]
    if data[2] != _fingerprint(where, position):
        raise invalid
    return position
