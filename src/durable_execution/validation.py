"""Input validators: turning ``input_schema(...)`` and ``validate_input(...)`` into one callable.

Accepted schemas, tried in this order:

1. a pydantic model class (``Model.model_validate``);
2. a pydantic ``TypeAdapter`` (or any object with ``validate_python``);
3. a ``msgspec.Struct`` subclass (``msgspec.convert``);
4. any object with a ``validate(value)`` method that returns the validated value or raises
   (for a class, a class or static method);
5. any other type or type annotation (``list[int]``, a ``TypedDict``): a pydantic
   ``TypeAdapter`` of it when pydantic supports it, else ``msgspec.convert`` when msgspec does
   (pydantic refuses ``typing.TypedDict`` before Python 3.12; msgspec takes it).

Anything else raises ``TypeError`` at definition time, functions included (they belong to
``validate_input``) and string annotations pydantic cannot resolve.

``validate_input(fn)`` takes a plain or async function of the input that returns the value to
pass on, or raises.
"""

from __future__ import annotations

import functools
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


def _validate_method(schema: Any) -> Callable[[Any], Any] | None:
    if isinstance(schema, type) and not isinstance(
        inspect.getattr_static(schema, "validate", None), classmethod | staticmethod
    ):
        return None  # a plain method of a class needs an instance: not a validator
    validate = getattr(schema, "validate", None)
    return validate if callable(validate) else None


def _pydantic_type_validator(schema: Any) -> Callable[[Any], Any] | None:
    try:
        from pydantic import TypeAdapter
    except ImportError:  # pragma: no cover - the dev extra installs both
        return None
    try:
        adapter = TypeAdapter(schema)
    except Exception:  # not a type pydantic understands (or typing.TypedDict before 3.12)
        return None
    # An unresolvable forward reference (a string such as "Missing") would fail every run.
    if not getattr(adapter, "pydantic_complete", True):
        return None
    return adapter.validate_python


def _msgspec_type_validator(schema: Any) -> Callable[[Any], Any] | None:
    try:
        import msgspec
        import msgspec.inspect
    except ImportError:  # pragma: no cover - the dev extra installs both
        return None
    try:
        info = msgspec.inspect.type_info(schema)
    except Exception:  # not a type msgspec understands
        return None
    if isinstance(info, msgspec.inspect.CustomType):
        return None  # an arbitrary class: stored input is never an instance of it
    return lambda value: msgspec.convert(value, schema)


def _fallback_type_validator(schema: Any) -> Callable[[Any], Any] | None:
    if inspect.isroutine(schema) or isinstance(schema, functools.partial):
        # pydantic would validate call arguments and call it: a function belongs to
        # validate_input, so refuse it here rather than surprise at run time.
        return None
    return _pydantic_type_validator(schema) or _msgspec_type_validator(schema)


def validator_from_schema(schema: Any) -> InputValidator:
    """Build a validator from one of the accepted schema kinds (see the module docstring)."""
    fn = _pydantic_model_validator(schema)
    if fn is None and callable(getattr(schema, "validate_python", None)):
        fn = schema.validate_python
    if fn is None:
        fn = _msgspec_struct_validator(schema)
    if fn is None:
        fn = _validate_method(schema)
    if fn is None:
        fn = _fallback_type_validator(schema)
    if fn is None:
        raise TypeError(
            f"Unsupported input schema {schema!r}: use a pydantic model or TypeAdapter, a msgspec "
            "type, or an object with a validate(value) method (validate_input takes functions)"
        )
    return validator_from_function(fn)
