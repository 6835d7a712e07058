"""Input validators built from schemas and functions (``input_schema`` / ``validate_input``)."""

from __future__ import annotations

import functools
import inspect
from typing import Any, TypedDict

import msgspec
import pydantic
import pytest

from durable_execution import DurableExecutor
from durable_execution.storage.memory import InMemoryStorage
from durable_execution.validation import validator_from_function, validator_from_schema


class Name(pydantic.BaseModel):
    name: str
    age: int = 0


class Coordinates(msgspec.Struct):
    lat: float
    lon: float


class Movie(TypedDict):
    title: str
    year: int


class EvenChecker:
    """Validates with an instance method."""

    def validate(self, value: Any) -> int:
        if value % 2:
            raise ValueError(f"{value} is odd")
        return int(value) // 2


class StaticChecker:
    """Validates with a static method, used as the class itself."""

    @staticmethod
    def validate(value: Any) -> str:
        if not isinstance(value, str):
            raise TypeError("expected str")
        return value.upper()


class ClassChecker:
    prefix = "checked:"

    @classmethod
    def validate(cls, value: Any) -> str:
        return f"{cls.prefix}{value}"


class InstanceMethodOnly:
    """A class whose ``validate`` needs an instance: the class itself is not a validator."""

    def validate(self, value: Any) -> Any:
        return value


def test_validators_are_coroutine_functions() -> None:
    assert inspect.iscoroutinefunction(validator_from_schema(Name))
    assert inspect.iscoroutinefunction(validator_from_function(lambda value: value))


async def test_pydantic_model_returns_an_instance() -> None:
    validate = validator_from_schema(Name)
    result = await validate({"name": "world", "age": "3"})
    assert isinstance(result, Name)
    assert result == Name(name="world", age=3)


async def test_pydantic_model_rejects_invalid_input() -> None:
    validate = validator_from_schema(Name)
    with pytest.raises(pydantic.ValidationError, match="name"):
        await validate({"age": 3})


@pytest.mark.parametrize(
    ("adapter", "value", "expected"),
    [
        (pydantic.TypeAdapter(int), "42", 42),
        (pydantic.TypeAdapter(list[int]), ["1", 2, "3"], [1, 2, 3]),
        (pydantic.TypeAdapter(dict[str, float]), {"a": "1.5"}, {"a": 1.5}),
    ],
)
async def test_type_adapter_transforms_the_value(
    adapter: pydantic.TypeAdapter[Any], value: Any, expected: Any
) -> None:
    result = await validator_from_schema(adapter)(value)
    assert result == expected
    assert type(result) is type(expected)


async def test_type_adapter_rejects_invalid_input() -> None:
    with pytest.raises(pydantic.ValidationError):
        await validator_from_schema(pydantic.TypeAdapter(int))("forty-two")


async def test_msgspec_struct_returns_a_struct() -> None:
    result = await validator_from_schema(Coordinates)({"lat": 1.5, "lon": -2})
    assert result == Coordinates(lat=1.5, lon=-2.0)


async def test_msgspec_struct_rejects_invalid_input() -> None:
    with pytest.raises(msgspec.ValidationError, match="lon"):
        await validator_from_schema(Coordinates)({"lat": 1.5})


async def test_object_with_validate_method() -> None:
    validate = validator_from_schema(EvenChecker())
    assert await validate(8) == 4
    with pytest.raises(ValueError, match="7 is odd"):
        await validate(7)


@pytest.mark.parametrize(
    ("schema", "value", "expected"),
    [(StaticChecker, "abc", "ABC"), (ClassChecker, "x", "checked:x")],
    ids=["staticmethod", "classmethod"],
)
async def test_class_with_static_or_class_validate_method(
    schema: type, value: Any, expected: Any
) -> None:
    assert await validator_from_schema(schema)(value) == expected


async def test_static_validate_errors_propagate() -> None:
    with pytest.raises(TypeError, match="expected str"):
        await validator_from_schema(StaticChecker)(5)


@pytest.mark.parametrize(
    ("schema", "value", "expected"),
    [
        (list[int], ["1", 2], [1, 2]),
        (int, "7", 7),
        (tuple[int, str], [1, "a"], (1, "a")),
        (Movie, {"title": "Up", "year": 2009}, {"title": "Up", "year": 2009}),
    ],
    ids=["list[int]", "int", "tuple", "TypedDict"],
)
async def test_plain_type_annotations(schema: Any, value: Any, expected: Any) -> None:
    assert await validator_from_schema(schema)(value) == expected


async def test_plain_type_annotation_rejects_invalid_input() -> None:
    with pytest.raises(pydantic.ValidationError):
        await validator_from_schema(list[int])(["not a number"])


def _a_function(value: Any) -> Any:
    return value


@pytest.mark.parametrize(
    "schema",
    [
        42,
        object(),
        "NoSuchTypeAnywhere",
        _a_function,
        lambda value: value,
        functools.partial(_a_function),
        InstanceMethodOnly,
    ],
    ids=["int", "object", "unresolvable string", "function", "lambda", "partial", "class"],
)
def test_unsupported_schema_raises_type_error(schema: Any) -> None:
    with pytest.raises(TypeError, match="Unsupported input schema"):
        validator_from_schema(schema)


def test_unsupported_schema_is_refused_at_definition_time() -> None:
    executor = DurableExecutor(InMemoryStorage())
    with pytest.raises(TypeError, match="Unsupported input schema"):
        executor.input_schema(42)
    with pytest.raises(TypeError, match="Unsupported input schema"):
        executor.parent_schema_task(
            id="p", input_schema=object(), timeout_ms=1, run_parent=lambda ctx, value: {}
        )


# -- validator_from_function ----------------------------------------------------------------


async def test_sync_function_result_is_passed_on() -> None:
    validate = validator_from_function(lambda value: {**value, "checked": True})
    assert await validate({"a": 1}) == {"a": 1, "checked": True}


async def test_async_function_is_awaited() -> None:
    async def check(value: Any) -> Any:
        return value * 2

    assert await validator_from_function(check)(21) == 42


async def test_sync_function_returning_an_awaitable_is_awaited() -> None:
    async def double(value: int) -> int:
        return value * 2

    assert await validator_from_function(lambda value: double(value))(5) == 10


async def test_sync_function_errors_propagate() -> None:
    def check(value: Any) -> Any:
        if value != "world":
            raise ValueError("Invalid input")
        return value

    validate = validator_from_function(check)
    assert await validate("world") == "world"
    with pytest.raises(ValueError, match="Invalid input"):
        await validate("moon")


async def test_async_function_errors_propagate() -> None:
    async def check(value: Any) -> Any:
        raise LookupError(f"unknown {value}")

    with pytest.raises(LookupError, match="unknown x"):
        await validator_from_function(check)("x")


@pytest.mark.parametrize("not_a_function", [None, 5, "check"])
def test_validator_from_function_needs_a_callable(not_a_function: Any) -> None:
    with pytest.raises(TypeError, match="validate_input expects a function"):
        validator_from_function(not_a_function)
