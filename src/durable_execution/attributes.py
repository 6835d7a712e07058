"""Attributes: free metadata on every execution, a JSON object of at most 16 KiB.

Set at enqueue (``enqueue_task(..., attributes={...})``) or on a child
(``ChildTask(task, input, attributes={...})``), read back as ``execution.attributes`` and, while
running, ``ctx.attributes``. A child starts with its parent's attributes, overridden key by key
by its own; the completion task and a sequence's steps carry their parent's. Middleware uses
them to carry context across processes (a trace context, a tenant).

They are stored as compact JSON text, encoded once when set: a child that adds nothing reuses
its parent's text without decoding it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from durable_execution.errors import DataTooLargeError, SerializationError
from durable_execution.serialization import text_size

__all__ = [
    "MAX_ATTRIBUTES_SIZE",
    "attributes_mapping",
    "decode_attributes",
    "encode_attributes",
    "merge_attributes",
]

MAX_ATTRIBUTES_SIZE = 16 * 1024
"""Bytes of UTF-8 that the JSON text of one execution's attributes may take."""

_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def _check_values(value: Any, path: str) -> None:
    """Raise unless ``value`` is made of JSON's own types (no tuples, sets, dates, NaN...);
    ``path`` names it in the error (``tenant``, ``tags[2]``, ``trace.id``)."""
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SerializationError(f"Attribute {path} is {value!r}: not a JSON number")
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_values(item, f"{path}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                where = f"Attribute {path}" if path else "Attributes"
                raise SerializationError(f"{where} have a key that is not a str: {key!r}")
            _check_values(item, f"{path}.{key}" if path else key)
        return
    raise SerializationError(
        f"Attribute {path} is a {type(value).__name__}: attributes hold JSON values only "
        "(str, int, float, bool, None, lists and dicts of them)"
    )


def attributes_mapping(attributes: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """``attributes`` as a mapping (empty for ``None``); raises
    :class:`~durable_execution.errors.SerializationError` for anything but a mapping."""
    if attributes is None:
        return {}
    if not isinstance(attributes, Mapping):
        raise SerializationError(
            f"Attributes must be a mapping of str keys to JSON values, got "
            f"{type(attributes).__name__}"
        )
    return attributes


def encode_attributes(attributes: Mapping[str, Any] | None) -> str | None:
    """The stored form of ``attributes`` (``None`` when there are none).

    Raises :class:`~durable_execution.errors.SerializationError` for keys that are not
    strings or values that are not JSON, and
    :class:`~durable_execution.errors.DataTooLargeError` past :data:`MAX_ATTRIBUTES_SIZE`.
    """
    if attributes is None or (type(attributes) is dict and not attributes):
        return None  # the common case, without an ABC isinstance check
    if not attributes_mapping(attributes):
        return None
    data = dict(attributes)
    _check_values(data, "")
    text = _ENCODE(data)
    size = text_size(text)
    if size > MAX_ATTRIBUTES_SIZE:
        raise DataTooLargeError(
            f"Attributes are too large: {size} bytes as JSON, the limit is "
            f"{MAX_ATTRIBUTES_SIZE} bytes"
        )
    return text


def decode_attributes(text: str | None) -> dict[str, Any]:
    """The attributes stored as ``text`` (a new dict; empty for ``None``)."""
    if text is None:
        return {}
    value = json.loads(text)
    if not isinstance(value, dict):
        raise SerializationError(f"Stored attributes are not a JSON object: {text[:100]!r}")
    return value


def merge_attributes(inherited: str | None, own: str | None) -> str | None:
    """A child's attributes: its parent's (``inherited``, stored text), overridden key by key
    by its own (``own``, stored text). Either may be ``None``."""
    if own is None:
        return inherited
    if inherited is None:
        return own
    merged = decode_attributes(inherited)
    merged.update(decode_attributes(own))
    return encode_attributes(merged)
