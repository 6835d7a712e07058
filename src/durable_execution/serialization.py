"""How inputs and outputs are stored: the :class:`Serializer` protocol and the JSON default.

The default, :class:`JsonSerializer`, writes compact JSON and round-trips, besides JSON's own
types: ``datetime``, ``date``, ``time``, ``timedelta``, ``UUID``, ``Decimal``, ``bytes``,
``set``, ``frozenset``, ``tuple`` and dicts with non-string keys. Pydantic models, dataclasses
and ``msgspec.Struct`` values are stored as their data and come back as plain dicts. Anything
else raises :class:`~durable_execution.errors.SerializationError`. Nothing is ever pickled.

Values that need a tag are written as ``{"__de__": <tag>, "v": <data>}``; a user dict that
happens to have a ``"__de__"`` key is tagged too, so it round-trips unchanged.

Nesting is bounded: a value whose JSON nests more than :data:`MAX_NESTING_DEPTH` (200)
arrays and objects deep raises ``SerializationError("... nested too deeply ...")``, when it is
serialized and when stored text is deserialized. A list or a plain dict is one level; a tuple,
a set and a tagged standard value two (the tag object and its data), a dict with non-string
keys three. Without the bound, deep values failed with Python's "maximum recursion depth
exceeded" at a depth that depended on the caller's own stack.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import math
import re
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from durable_execution.errors import DataTooLargeError, SerializationError

__all__ = ["MAX_NESTING_DEPTH", "JsonSerializer", "Serializer", "serialize_checked", "text_size"]

MAX_NESTING_DEPTH = 200
"""The deepest nesting of JSON arrays and objects :class:`JsonSerializer` writes and reads."""

_TAG = "__de__"
_SCALARS = (str, int, bool, type(None))


def _too_deep(action: str = "serialize") -> SerializationError:
    return SerializationError(
        f"Cannot {action} value: nested too deeply (more than {MAX_NESTING_DEPTH} levels of "
        "arrays and objects)"
    )


@runtime_checkable
class Serializer(Protocol):
    """Turns values into text for storage and back.

    ``deserialize(serialize(v))`` must equal ``v`` for every value the application passes.
    Both methods raise :class:`~durable_execution.errors.SerializationError` (or any exception,
    which the executor wraps) on values they cannot handle. They must be thread-safe.
    """

    def serialize(self, value: Any) -> str:
        """The text form of ``value``."""
        ...

    def deserialize(self, data: str) -> Any:
        """The value whose text form is ``data``."""
        ...


def _encode_float(value: float, depth: int) -> Any:
    if math.isfinite(value):
        return value
    if depth + 1 > MAX_NESTING_DEPTH:
        raise _too_deep()
    return {_TAG: "float", "v": repr(value)}


def _tagged(tag: str, value: Any) -> dict[str, Any]:
    return {_TAG: tag, "v": value}


class JsonSerializer:
    """The default serializer: JSON with tags for the common Python types (see module doc)."""

    def serialize(self, value: Any) -> str:
        if value is None:  # the most common input and output, without the encoder's cost
            return "null"
        try:
            encoded = self._encode(value, 0)
            text = _ENCODER.encode(encoded)
            if not text.isascii() and not _is_utf8_encodable(text):
                # Lone surrogates (say, from os.fsdecode) cannot be stored as UTF-8: escape them.
                text = json.dumps(encoded, separators=(",", ":"))
            return text
        except SerializationError:
            raise
        except RecursionError as exc:  # a self-referencing model_dump, a very deep caller
            raise SerializationError(f"Cannot serialize value: nested too deeply: {exc}") from exc
        except Exception as exc:  # a model_dump or property that raises, ...
            raise SerializationError(f"Cannot serialize value: {exc}") from exc

    def deserialize(self, data: str) -> Any:
        if data == "null":
            return None
        try:
            if data.count("[") + data.count("{") > MAX_NESTING_DEPTH:  # else it cannot be
                _check_depth(data)
            return _DECODER.decode(data)
        except SerializationError:
            raise
        except RecursionError as exc:
            raise SerializationError(f"Cannot deserialize value: nested too deeply: {exc}") from exc
        except Exception as exc:  # malformed tagged data raises AttributeError, IndexError, ...
            raise SerializationError(
                f"Cannot deserialize value: {type(exc).__name__}: {exc}"
            ) from exc

    # ``depth``: the JSON arrays and objects around the value being encoded. Each container
    # checks that its own levels stay within MAX_NESTING_DEPTH (see the module docstring).

    def _encode(self, value: Any, depth: int) -> Any:
        if isinstance(value, _SCALARS):
            return value
        if isinstance(value, float):
            return _encode_float(value, depth)
        if isinstance(value, list):
            inner = _deeper(depth, 1)
            return [self._encode(item, inner) for item in value]
        if isinstance(value, dict):
            return self._encode_dict(value, depth)
        if isinstance(value, tuple) and not hasattr(value, "_fields"):
            inner = _deeper(depth, 2)
            return _tagged("tuple", [self._encode(item, inner) for item in value])
        encoder = _ENCODERS.get(type(value))
        if encoder is not None:
            _deeper(depth, 2)
            return encoder(value)
        return self._encode_other(value, depth)

    def _encode_dict(self, value: dict[Any, Any], depth: int) -> Any:
        if all(type(key) is str for key in value) and _TAG not in value:
            inner = _deeper(depth, 1)
            return {key: self._encode(item, inner) for key, item in value.items()}
        inner = _deeper(depth, 3)
        return _tagged(
            "dict", [[self._encode(k, inner), self._encode(v, inner)] for k, v in value.items()]
        )

    def _encode_other(self, value: Any, depth: int) -> Any:
        if isinstance(value, tuple):  # named tuples are stored as their data
            inner = _deeper(depth, 1)
            return [self._encode(item, inner) for item in value]
        if isinstance(value, set | frozenset):
            tag = "set" if isinstance(value, set) else "frozenset"
            inner = _deeper(depth, 2)
            items = [self._encode(item, inner) for item in value]
            # A stable order makes equal sets serialize equally.
            items.sort(key=lambda item: json.dumps(item, sort_keys=True))
            return _tagged(tag, items)
        for type_, encoder in _ENCODERS.items():
            if isinstance(value, type_):
                _deeper(depth, 2)
                return encoder(value)
        if isinstance(value, Mapping):
            return self._encode_dict(dict(value), depth)
        return self._encode(_as_plain_data(value), depth)


def _deeper(depth: int, levels: int) -> int:
    """The depth inside a container of ``levels`` JSON levels at ``depth``; raise when it
    goes past :data:`MAX_NESTING_DEPTH`."""
    inner = depth + levels
    if inner > MAX_NESTING_DEPTH:
        raise _too_deep()
    return inner


_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
# What valid JSON holds outside strings besides brackets: deleted, leaving only the brackets.
_NOT_BRACKETS = str.maketrans("", "", ",:0123456789.-+eE \n\t\rtruefalsnNIiy")


def _check_depth(data: str) -> None:
    """Raise when the JSON text ``data`` nests deeper than :data:`MAX_NESTING_DEPTH`, before
    the decoder recurses into it. At C speed: strings are removed by a regular expression and
    everything else but brackets by ``str.translate``, then each pass removes the innermost
    pairs (one level at least); malformed text (a pass that removes nothing) is left to the
    decoder to report."""
    brackets = _STRING.sub("", data).translate(_NOT_BRACKETS)
    for _ in range(MAX_NESTING_DEPTH):
        inner_removed = brackets.replace("[]", "").replace("{}", "")
        if len(inner_removed) == len(brackets):
            return
        brackets = inner_removed
    if brackets:
        raise _too_deep("deserialize")


def _is_utf8_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _as_plain_data(value: Any) -> Any:
    """The data of a pydantic model, dataclass or msgspec struct; raise for anything else."""
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        return dump(mode="python")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    struct_fields = getattr(type(value), "__struct_fields__", None)
    if struct_fields is not None:
        return {name: getattr(value, name) for name in struct_fields}
    raise SerializationError(
        f"Cannot serialize value of type {type(value).__qualname__}: "
        "use JSON types, the supported standard types, a pydantic model or a dataclass, "
        "or give the executor a custom serializer"
    )


_ENCODERS: dict[type[Any], Callable[[Any], Any]] = {
    dt.datetime: lambda v: _tagged("datetime", v.isoformat()),
    dt.date: lambda v: _tagged("date", v.isoformat()),
    dt.time: lambda v: _tagged("time", v.isoformat()),
    dt.timedelta: lambda v: _tagged("timedelta", [v.days, v.seconds, v.microseconds]),
    uuid.UUID: lambda v: _tagged("uuid", str(v)),
    Decimal: lambda v: _tagged("decimal", str(v)),
    bytes: lambda v: _tagged("bytes", base64.b64encode(v).decode("ascii")),
    bytearray: lambda v: _tagged("bytes", base64.b64encode(bytes(v)).decode("ascii")),
}


def _decode_dict_pairs(pairs: Any) -> dict[Any, Any]:
    return {_freeze(key): value for key, value in pairs}


def _freeze(key: Any) -> Any:
    # Keys that were tuples come back as tuples (hashable); lists cannot be keys anyway.
    return tuple(_freeze(k) for k in key) if isinstance(key, list) else key


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "timedelta": lambda v: dt.timedelta(days=v[0], seconds=v[1], microseconds=v[2]),
    "uuid": uuid.UUID,
    "decimal": Decimal,
    "bytes": lambda v: base64.b64decode(v.encode("ascii")),
    "tuple": tuple,
    "set": set,
    "frozenset": frozenset,
    "dict": _decode_dict_pairs,
    "float": float,
}


def _decode_object(obj: dict[str, Any]) -> Any:
    tag = obj.get(_TAG)
    if tag is None or len(obj) != 2 or "v" not in obj:
        return obj
    decoder = _DECODERS.get(tag)
    if decoder is None:
        raise SerializationError(f"Unknown serialized type tag {tag!r}")
    return decoder(obj["v"])


# Made once: json.dumps/json.loads build a new encoder/decoder per call when given options.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_DECODER = json.JSONDecoder(object_hook=_decode_object)


def serialize_checked(serializer: Serializer, value: Any, *, limit: int, what: str) -> str:
    """Serialize ``value`` and enforce ``limit`` (bytes of UTF-8); ``what`` names it in errors."""
    try:
        data = serializer.serialize(value)
    except SerializationError as exc:
        raise SerializationError(f"{what} is not serializable: {exc}") from exc
    except Exception as exc:
        raise SerializationError(
            f"{what} is not serializable: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(data, str):
        raise SerializationError(
            f"{what}: the serializer returned {type(data).__name__}, expected str"
        )
    try:
        size = text_size(data)
    except UnicodeEncodeError as exc:
        raise SerializationError(
            f"{what}: the serializer returned text that is not UTF-8: {exc}"
        ) from exc
    if size > limit:
        raise DataTooLargeError(
            f"{what} is too large: {size} bytes serialized, the limit is {limit} bytes"
        )
    return data


def text_size(data: str) -> int:
    """The size of serialized ``data`` in bytes of UTF-8, as the data limits count it."""
    return len(data) if data.isascii() else len(data.encode("utf-8"))
