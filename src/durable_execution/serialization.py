"""How inputs and outputs are stored: the :class:`Serializer` protocol and the JSON default.

The default, :class:`JsonSerializer`, writes compact JSON and round-trips, besides JSON's own
types: ``datetime``, ``date``, ``time``, ``timedelta``, ``UUID``, ``Decimal``, ``bytes``,
``set``, ``frozenset``, ``tuple`` and dicts with non-string keys. Pydantic models, dataclasses
and ``msgspec.Struct`` values are stored as their data and come back as plain dicts. Anything
else raises :class:`~durable_execution.errors.SerializationError`. Nothing is ever pickled.

Values that need a tag are written as ``{"__de__": <tag>, "v": <data>}``; a user dict that
happens to have a ``"__de__"`` key is tagged too, so it round-trips unchanged.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import math
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from durable_execution.errors import DataTooLargeError, SerializationError

__all__ = ["JsonSerializer", "Serializer", "serialize_checked", "text_size"]

_TAG = "__de__"
_SCALARS = (str, int, bool, type(None))


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


def _encode_float(value: float) -> Any:
    if math.isfinite(value):
        return value
    return {_TAG: "float", "v": repr(value)}


def _tagged(tag: str, value: Any) -> dict[str, Any]:
    return {_TAG: tag, "v": value}


class JsonSerializer:
    """The default serializer: JSON with tags for the common Python types (see module doc)."""

    def serialize(self, value: Any) -> str:
        if value is None:  # the most common input and output, without the encoder's cost
            return "null"
        try:
            encoded = self._encode(value)
            text = _ENCODER.encode(encoded)
            if not text.isascii() and not _is_utf8_encodable(text):
                # Lone surrogates (say, from os.fsdecode) cannot be stored as UTF-8: escape them.
                text = json.dumps(encoded, separators=(",", ":"))
            return text
        except SerializationError:
            raise
        except Exception as exc:  # RecursionError, a model_dump or property that raises, ...
            raise SerializationError(f"Cannot serialize value: {exc}") from exc

    def deserialize(self, data: str) -> Any:
        if data == "null":
            return None
        try:
            return _DECODER.decode(data)
        except SerializationError:
            raise
        except Exception as exc:  # malformed tagged data raises AttributeError, IndexError, ...
            raise SerializationError(
                f"Cannot deserialize value: {type(exc).__name__}: {exc}"
            ) from exc

    def _encode(self, value: Any) -> Any:
        if isinstance(value, _SCALARS):
            return value
        if isinstance(value, float):
            return _encode_float(value)
        if isinstance(value, list):
            return [self._encode(item) for item in value]
        if isinstance(value, dict):
            return self._encode_dict(value)
        if isinstance(value, tuple) and not hasattr(value, "_fields"):
            return _tagged("tuple", [self._encode(item) for item in value])
        encoder = _ENCODERS.get(type(value))
        if encoder is not None:
            return encoder(value)
        return self._encode_other(value)

    def _encode_dict(self, value: dict[Any, Any]) -> Any:
        if all(type(key) is str for key in value) and _TAG not in value:
            return {key: self._encode(item) for key, item in value.items()}
        return _tagged("dict", [[self._encode(k), self._encode(v)] for k, v in value.items()])

    def _encode_other(self, value: Any) -> Any:
        if isinstance(value, tuple):  # named tuples are stored as their data
            return [self._encode(item) for item in value]
        if isinstance(value, set | frozenset):
            tag = "set" if isinstance(value, set) else "frozenset"
            items = [self._encode(item) for item in value]
            # A stable order makes equal sets serialize equally.
            items.sort(key=lambda item: json.dumps(item, sort_keys=True))
            return _tagged(tag, items)
        for type_, encoder in _ENCODERS.items():
            if isinstance(value, type_):
                return encoder(value)
        if isinstance(value, Mapping):
            return self._encode_dict(dict(value))
        return self._encode(_as_plain_data(value))


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
