"""Input validators: turning ``input_schema(...)`` and ``validate_input(...)`` into one callable.

Accepted schemas, tried in this order:

1. a pydantic model class (``Model.model_validate``);
2. a pydantic ``TypeAdapter`` (or any object with ``validate_python``);
3. a ``msgspec.Struct`` subclass (``msgspec.convert``);
4. any object with a ``validate(value)`` method that returns the validated value or raises;
5. any other type or type annotation (``list[int]``, a ``TypedDict``): a pydantic
   ``TypeAdapter`` of it when pydantic is installed, else ``msgspec.convert`` when msgspec is.

``validate_input(fn)`` takes a plain or async function of the input that returns the value to
pass on, or raises.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["InputValidator", "validator_from_function", "validator_from_schema"]

InputValidator = Callable[[Any], Awaitable[Any]]


def validator_from_function(fn: Callable[[Any], Any]) -> InputValidator:
    """Wrap a plain or async validation function."""
    if not callable(fn):
        raise TypeError(f"validate_input expects a function, got {type(fn).__name__}")

    async def validate(value: Any) -> Any:
        result = fn(value)
        if inspect.isawaitable(result):
            result = await result
        return result

    return validate


def _pydantic_model_validator(schema: Any) -> Callable[[Any], Any] | None:
    validate = getattr(schema, "model_validate", None)
    if isinstance(schema, type) and callable(validate):
        return validate  # type: ignore[no-any-return]
    return None


def _msgspec_struct_validator(schema: Any) -> Callable[[Any], Any] | None:
    if not isinstance(schema, type) or not hasattr(schema, "__struct_fields__"):
        return None
    import msgspec

    return lambda value: msgspec.convert(value, schema)


def _fallback_type_validator(schema: Any) -> Callable[[Any], Any] | None:
    try:
        from pydantic import TypeAdapter
    except ImportError:
        pass
    else:
        try:
            return TypeAdapter(schema).validate_python
        except Exception:  # not a type pydantic understands
            return None
    try:
        import msgspec
    except ImportError:  # pragma: no cover - the dev extra installs both
        return None
    return lambda value: msgspec.convert(value, schema)


def validator_from_schema(schema: Any) -> InputValidator:
    """Build a validator from one of the accepted schema kinds (see the module docstring)."""
    fn = _pydantic_model_validator(schema)
    if fn is None and callable(getattr(schema, "validate_python", None)):
        fn = schema.validate_python
    if fn is None:
        fn = _msgspec_struct_validator(schema)
    if fn is None and not isinstance(schema, type) and callable(getattr(schema, "validate", None)):
        fn = schema.validate
    if fn is None:
        fn = _fallback_type_validator(schema)
    if fn is None:
        raise TypeError(
            f"Unsupported input schema {schema!r}: use a pydantic model or TypeAdapter, a msgspec "
            "type, or an object with a validate(value) method"
        )
    return validator_from_function(fn)
