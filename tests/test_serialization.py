"""The default JSON serializer, the size check and the serializer protocol (no I/O)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import types
import uuid
from collections import namedtuple
from decimal import Decimal
from typing import Any

import msgspec
import pydantic
import pytest

from durable_execution.errors import DataTooLargeError, SerializationError
from durable_execution.serialization import JsonSerializer, Serializer, serialize_checked

SERIALIZER = JsonSerializer()


def assert_identical(actual: Any, expected: Any) -> None:
    """Equal, with the same types all the way down (``True`` is not ``1``, a tuple not a list)."""
    assert type(actual) is type(expected), (actual, expected)
    if isinstance(expected, float) and math.isnan(expected):
        assert math.isnan(actual)
    elif isinstance(expected, dict):
        assert len(actual) == len(expected)
        for (key_a, value_a), (key_e, value_e) in zip(
            actual.items(), expected.items(), strict=True
        ):
            assert_identical(key_a, key_e)
            assert_identical(value_a, value_e)
    elif isinstance(expected, list | tuple):
        assert len(actual) == len(expected)
        for item_a, item_e in zip(actual, expected, strict=True):
            assert_identical(item_a, item_e)
    else:
        assert actual == expected
        if isinstance(expected, dt.datetime | dt.time):
            assert actual.utcoffset() == expected.utcoffset()


def round_trip(value: Any) -> Any:
    text = SERIALIZER.serialize(value)
    assert isinstance(text, str)
    json.loads(text)  # always valid JSON
    return SERIALIZER.deserialize(text)


IST = dt.timezone(dt.timedelta(hours=5, minutes=30))

ROUND_TRIPS: dict[str, Any] = {
    "none": None,
    "true": True,
    "false": False,
    "zero": 0,
    "negative int": -17,
    "huge int": 10**40,
    "float": 1.5,
    "negative zero": -0.0,
    "empty str": "",
    "non-ascii str": "héllo ✓ 日本",
    "lone surrogate": "file\udcffname é",
    "empty list": [],
    "empty dict": {},
    "nested json": {"a": [1, {"b": None, "c": [True, 2.5]}], "d": "e"},
    "naive datetime": dt.datetime(2024, 2, 29, 13, 45, 7, 123456),
    "utc datetime": dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    "offset datetime": dt.datetime(2023, 6, 1, 8, 0, tzinfo=IST),
    "date": dt.date(1999, 12, 31),
    "naive time": dt.time(23, 59, 59, 999999),
    "aware time": dt.time(6, 30, tzinfo=IST),
    "timedelta": dt.timedelta(days=3, seconds=7, microseconds=11),
    "negative timedelta": dt.timedelta(days=-2, microseconds=5),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "decimal": Decimal("12345678901234567890.000000001"),
    "tiny decimal": Decimal("1E-30"),
    "bytes": b"\x00\xff binary \x80",
    "empty bytes": b"",
    "set": {1, "two", 3.0, (4, 5)},
    "empty set": set(),
    "frozenset": frozenset({"a", frozenset({1, 2})}),
    "tuple": (1, "a", None),
    "empty tuple": (),
    "nested tuple": ((1, (2, (3,))), [(), ((),)]),
    "int keys": {1: "one", 2: {3: "three"}},
    "tuple keys": {(1, 2): "pair", (1, (2, 3)): "nested", (): "empty"},
    "mixed keys": {"a": 1, 2: "b", None: 3, True: 4, 1.5: 5},
    "frozenset key": {frozenset({1}): "f"},
    "user dict with tag key": {"__de__": "tuple", "v": [1, 2]},
    "tag key only": {"__de__": None},
    "tag key nested": {"outer": [{"__de__": "datetime", "v": "not a date"}]},
    "nan": math.nan,
    "infinities": [math.inf, -math.inf],
    "special floats in a set": {math.inf, -math.inf},
    "everything nested": {
        "when": [dt.datetime(2020, 5, 17, tzinfo=dt.UTC), dt.date(2020, 5, 17)],
        "ids": (uuid.UUID(int=1), uuid.UUID(int=2)),
        "money": {"amount": Decimal("9.99"), "tags": frozenset({"x"})},
        "raw": [b"a", b"b"],
    },
}


@pytest.mark.parametrize("value", list(ROUND_TRIPS.values()), ids=list(ROUND_TRIPS))
def test_round_trips_with_types_preserved(value: Any) -> None:
    assert_identical(round_trip(value), value)


def test_nan_survives() -> None:
    # NaN != NaN, so the table's equality check would be vacuous without this explicit one.
    back = round_trip({"x": math.nan, "y": [math.nan]})
    assert math.isnan(back["x"])
    assert math.isnan(back["y"][0])


def test_output_is_compact_json_without_non_finite_literals() -> None:
    text = SERIALIZER.serialize({"a": [1, 2], "b": math.inf, "c": "é"})
    assert " " not in text
    assert "Infinity" not in text
    assert "é" in text  # not escaped: sizes are measured on UTF-8


def test_equal_sets_serialize_equally_whatever_the_insertion_order() -> None:
    first = {3, 1, "b", "a", (2, 1)}
    second = {"a", (2, 1), "b", 1, 3}
    assert SERIALIZER.serialize(first) == SERIALIZER.serialize(second)


def test_bytearray_comes_back_as_bytes() -> None:
    assert_identical(round_trip(bytearray(b"abc")), b"abc")


def test_named_tuple_is_stored_as_its_data() -> None:
    point = namedtuple("point", "x y")
    assert_identical(round_trip(point(1, 2)), [1, 2])


def test_read_only_mapping_is_stored_as_a_dict() -> None:
    assert_identical(round_trip(types.MappingProxyType({"a": 1, 2: "b"})), {"a": 1, 2: "b"})


class Customer(pydantic.BaseModel):
    name: str
    joined: dt.datetime
    tags: set[str] = set()


@dataclasses.dataclass
class Order:
    number: int
    customer: Customer
    lines: tuple[str, ...] = ()


class Point(msgspec.Struct):
    x: int
    y: list[int]


JOINED = dt.datetime(2021, 3, 4, 5, 6, 7, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Customer(name="ann", joined=JOINED), {"name": "ann", "joined": JOINED, "tags": set()}),
        (
            Order(7, Customer(name="bo", joined=JOINED, tags={"vip"}), ("a", "b")),
            {
                "number": 7,
                "customer": {"name": "bo", "joined": JOINED, "tags": {"vip"}},
                "lines": ("a", "b"),
            },
        ),
        (Point(1, [2, 3]), {"x": 1, "y": [2, 3]}),
        ([Point(0, [])], [{"x": 0, "y": []}]),
    ],
    ids=["pydantic model", "dataclass with nested model", "msgspec struct", "struct in a list"],
)
def test_models_dataclasses_and_structs_come_back_as_their_data(value: Any, expected: Any) -> None:
    assert_identical(round_trip(value), expected)


class Opaque:
    pass


def some_function() -> None:
    pass


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        (Opaque(), "Opaque"),
        (some_function, "function"),
        (lambda: None, "function"),
        (print, "builtin_function_or_method"),
        (Opaque, "type"),
        (Customer, "ModelMetaclass"),
        ({"nested": [1, {"deep": object()}]}, "object"),
        ({(1, Opaque()): "key"}, "Opaque"),
    ],
    ids=["object", "function", "lambda", "builtin", "class", "model class", "nested", "in key"],
)
def test_unserializable_values_raise_a_clear_error(value: Any, type_name: str) -> None:
    with pytest.raises(SerializationError) as info:
        SERIALIZER.serialize(value)
    message = str(info.value)
    assert f"Cannot serialize value of type {type_name}" in message
    assert "custom serializer" in message


def test_self_referencing_value_raises_serialization_error() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(SerializationError, match="Cannot serialize value"):
        SERIALIZER.serialize(loop)


def test_dataclass_with_unset_field_raises_serialization_error() -> None:
    @dataclasses.dataclass
    class Half:
        late: int = dataclasses.field(init=False)

    with pytest.raises(SerializationError, match="Cannot serialize value"):
        SERIALIZER.serialize(Half())


def test_serialization_error_is_a_value_error() -> None:
    assert issubclass(SerializationError, ValueError)
    assert issubclass(DataTooLargeError, SerializationError)


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "",
        '{"__de__": "no_such_tag", "v": 1}',
        '{"__de__": "bytes", "v": 5}',
        '{"__de__": "decimal", "v": "abc"}',
        '{"__de__": "timedelta", "v": [1]}',
        '{"__de__": "uuid", "v": 5}',
        '{"__de__": "datetime", "v": "yesterday"}',
        '{"__de__": "dict", "v": 5}',
        '{"__de__": ["list"], "v": 1}',
    ],
)
def test_malformed_text_raises_serialization_error(text: str) -> None:
    with pytest.raises(SerializationError, match=r"deserialize|tag"):
        SERIALIZER.deserialize(text)


def test_unknown_tag_is_named() -> None:
    with pytest.raises(SerializationError, match="'no_such_tag'"):
        SERIALIZER.deserialize('{"__de__": "no_such_tag", "v": 1}')


def test_plain_dicts_that_look_almost_tagged_are_left_alone() -> None:
    # Written by something else than JsonSerializer: not exactly {"__de__", "v"}.
    assert SERIALIZER.deserialize('{"__de__": "tuple"}') == {"__de__": "tuple"}
    assert SERIALIZER.deserialize('{"__de__": "tuple", "v": [1], "x": 2}') == {
        "__de__": "tuple",
        "v": [1],
        "x": 2,
    }


# -- serialize_checked ----------------------------------------------------------------------


def test_serialize_checked_returns_the_text_within_the_limit() -> None:
    text = serialize_checked(SERIALIZER, {"a": 1}, limit=100, what="Input of task t")
    assert SERIALIZER.deserialize(text) == {"a": 1}


def test_serialize_checked_ascii_boundary() -> None:
    value = "x" * 10  # serialized: 12 bytes with the quotes
    assert serialize_checked(SERIALIZER, value, limit=12, what="Input") == '"xxxxxxxxxx"'
    with pytest.raises(DataTooLargeError, match="12 bytes serialized, the limit is 11 bytes"):
        serialize_checked(SERIALIZER, value, limit=11, what="Input")


def test_serialize_checked_counts_utf8_bytes_not_characters() -> None:
    value = "é" * 10  # 12 characters serialized, but 22 bytes of UTF-8
    assert len(SERIALIZER.serialize(value)) == 12
    assert serialize_checked(SERIALIZER, value, limit=22, what="Output") == f'"{value}"'
    with pytest.raises(DataTooLargeError, match="22 bytes serialized, the limit is 21 bytes"):
        serialize_checked(SERIALIZER, value, limit=21, what="Output")
    with pytest.raises(DataTooLargeError):
        serialize_checked(SERIALIZER, value, limit=12, what="Output")


def test_lone_surrogates_are_escaped_so_the_text_is_valid_utf8() -> None:
    # os.fsdecode() turns undecodable file name bytes into lone surrogates.
    value = {"path": "dir/\udcff.txt", "name": "é"}
    text = serialize_checked(SERIALIZER, value, limit=1000, what="Input")
    text.encode("utf-8")  # storable
    assert SERIALIZER.deserialize(text) == value


def test_serialize_checked_rejects_text_that_is_not_utf8() -> None:
    class SurrogateSerializer:
        def serialize(self, value: Any) -> str:
            return "\ud800"

        def deserialize(self, data: str) -> Any:
            return data

    with pytest.raises(
        SerializationError, match=r"^Input: the serializer returned text that is not"
    ):
        serialize_checked(SurrogateSerializer(), 1, limit=1000, what="Input")


def test_serialize_checked_error_names_what_was_too_large() -> None:
    with pytest.raises(DataTooLargeError, match=r"^Output of task big is too large: "):
        serialize_checked(SERIALIZER, "x" * 100, limit=10, what="Output of task big")


def test_serialize_checked_wraps_unserializable_values() -> None:
    with pytest.raises(SerializationError) as info:
        serialize_checked(SERIALIZER, Opaque(), limit=1000, what="Input of task t")
    assert not isinstance(info.value, DataTooLargeError)
    assert str(info.value).startswith("Input of task t is not serializable: ")
    assert "Opaque" in str(info.value)


class BytesSerializer:
    def serialize(self, value: Any) -> Any:
        return json.dumps(value).encode()

    def deserialize(self, data: str) -> Any:
        return json.loads(data)


class ExplodingSerializer:
    def serialize(self, value: Any) -> str:
        raise RuntimeError("boom")

    def deserialize(self, data: str) -> Any:
        raise RuntimeError("boom")


class PickySerializer:
    def serialize(self, value: Any) -> str:
        raise SerializationError("only strings please")

    def deserialize(self, data: str) -> Any:
        return data


def test_custom_serializer_returning_non_str_is_wrapped() -> None:
    with pytest.raises(
        SerializationError, match=r"^Output: the serializer returned bytes, expected"
    ):
        serialize_checked(BytesSerializer(), {"a": 1}, limit=1000, what="Output")


def test_custom_serializer_raising_is_wrapped_with_its_cause() -> None:
    with pytest.raises(SerializationError, match=r"^Input is not serializable: RuntimeError: boom"):
        serialize_checked(ExplodingSerializer(), 1, limit=1000, what="Input")


def test_custom_serializer_raising_serialization_error_gets_context() -> None:
    with pytest.raises(SerializationError) as info:
        serialize_checked(PickySerializer(), 1, limit=1000, what="Input of task p")
    assert str(info.value) == "Input of task p is not serializable: only strings please"
    assert isinstance(info.value.__cause__, SerializationError)


def test_serializer_protocol_is_runtime_checkable() -> None:
    class OnlySerialize:
        def serialize(self, value: Any) -> str:
            return ""

    assert isinstance(JsonSerializer(), Serializer)
    assert isinstance(BytesSerializer(), Serializer)
    assert not isinstance(OnlySerialize(), Serializer)
    assert not isinstance(object(), Serializer)
