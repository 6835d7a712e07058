"""ExecutorOptions is the one list of the executor's options: the constructor's keywords and
the README's list are kept equal to it."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import pytest

from durable_execution import DurableExecutor, ExecutorOptions

README = Path(__file__).resolve().parents[1] / "README.md"
DEFAULTED_BY_NONE = {"serializer", "logger"}  # None in the signature: the option's default


def test_the_constructor_takes_exactly_the_options_with_their_defaults() -> None:
    parameters = inspect.signature(DurableExecutor.__init__).parameters
    keywords = {name: p.default for name, p in parameters.items() if p.kind is p.KEYWORD_ONLY}
    options = dataclasses.fields(ExecutorOptions)
    assert list(keywords) == [option.name for option in options]
    for option in options:
        if option.name in DEFAULTED_BY_NONE:
            assert keywords[option.name] is None
        else:
            assert keywords[option.name] == option.default, option.name


def test_the_readme_lists_every_option() -> None:
    readme = README.read_text()
    section = readme[readme.index("## Executor options") :]
    section = section[: section.index("\n## ")]
    listed = set(re.findall(r"`([a-z_]+)`", section))
    assert {option.name for option in dataclasses.fields(ExecutorOptions)} <= listed


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("expire_leeway_ms", -1, "an integer between 0 and 316224000000"),
        ("expire_leeway_ms", 10**20, "an integer between 0 and 316224000000"),
        ("lease_ms", 99, "an integer between 100 and 86400000"),
        ("lease_ms", 86_400_001, "an integer between 100 and 86400000"),
        ("max_lease_expiries", 0, "an integer between 1 and 1000000"),
        ("background_process_interval_ms", 0, "an integer between 1 and 3600000"),
        ("max_concurrent_task_executions", 100_001, "an integer between 1 and 100000"),
        ("max_task_executions_per_batch", 10_001, "an integer between 1 and 10000"),
        ("max_children_per_task_execution", 100_001, "an integer between 1 and 100000"),
        (
            "max_serialized_input_data_size",
            10 * 1024 * 1024 + 1,
            "an integer between 1 and 10485760",
        ),
        ("shutdown_timeout_ms", True, "an integer between 0 and 316224000000"),
    ],
)
def test_integer_options_are_checked_from_their_bounds(
    option: str, value: object, expected: str
) -> None:
    with pytest.raises(
        ValueError, match=f"^Invalid option {option}={value!r}: expected {expected}"
    ):
        DurableExecutor(**{option: value})  # type: ignore[arg-type]


def test_every_integer_option_has_an_upper_bound() -> None:
    for option in dataclasses.fields(ExecutorOptions):
        if "minimum" in option.metadata:
            assert isinstance(option.metadata["maximum"], int), option.name
            above = option.metadata["maximum"] + 1
            with pytest.raises(ValueError, match=f"^Invalid option {option.name}={above}"):
                ExecutorOptions(**{option.name: above})
