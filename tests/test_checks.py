"""check_int: the one check of every integer option."""

from __future__ import annotations

import pytest

from durable_execution.checks import check_int


@pytest.mark.parametrize("value", [0, 1, 10, 2**40])
def test_integers_in_range_pass(value: int) -> None:
    assert check_int("n", value, minimum=0) == value


@pytest.mark.parametrize(
    ("value", "minimum", "maximum", "message"),
    [
        (True, 0, None, "Invalid option n=True: expected an integer >= 0"),
        (1.0, 0, None, "Invalid option n=1.0: expected an integer >= 0"),
        ("3", None, None, "Invalid option n='3': expected an integer"),
        (-1, 0, None, "Invalid option n=-1: expected an integer >= 0"),
        (11, 1, 10, "Invalid option n=11: expected an integer between 1 and 10"),
        (11, None, 10, "Invalid option n=11: expected an integer <= 10"),
    ],
)
def test_anything_else_is_refused_with_one_message(
    value: object, minimum: int | None, maximum: int | None, message: str
) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        check_int("n", value, minimum=minimum, maximum=maximum)


def test_where_names_whose_option_it_is() -> None:
    with pytest.raises(ValueError, match=r"^Invalid option n=0 for task 'a': expected an"):
        check_int("n", 0, minimum=1, where=" for task 'a'")
