"""How a parent task treats a child that does not complete: ``children_policy``.

- ``"fail_fast"`` (the default): the first child that ends in any other status than
  ``completed`` fails the parent (``children_failed``); its unfinished children are cancelled.
- ``"all_settled"``: no child fails the parent; it waits until every child finished, then its
  completion task runs (or, without one, it completes) with every child's status, output and
  error in ``value.children``.

The policy is stored with the parent when it starts waiting for its children, so a parent keeps
the policy it started with even if its task's definition changes meanwhile.
"""

from __future__ import annotations

from typing import Final, Literal, TypeAlias

__all__ = [
    "ALL_SETTLED",
    "CHILDREN_POLICIES",
    "FAIL_FAST",
    "ChildrenPolicy",
    "check_children_policy",
]

ChildrenPolicy: TypeAlias = Literal["fail_fast", "all_settled"]
"""The values of ``parent_task(..., children_policy=...)``."""

FAIL_FAST: Final = "fail_fast"
ALL_SETTLED: Final = "all_settled"
CHILDREN_POLICIES: Final = (FAIL_FAST, ALL_SETTLED)


def check_children_policy(value: object, *, where: str = "") -> ChildrenPolicy:
    """``value`` if it is a children policy, else a :class:`ValueError` naming the choices."""
    if value == FAIL_FAST and isinstance(value, str):
        return FAIL_FAST
    if value == ALL_SETTLED and isinstance(value, str):
        return ALL_SETTLED
    raise ValueError(f"children_policy{where} must be 'fail_fast' or 'all_settled', got {value!r}")
