"""The size limits every template operation is held to, and the per-render budget summing them.

CPython runs ``str.replace``, ``str.center``, ``%``, ``repr`` of a list and friends in C, where
no signal handler runs, so a time limit alone cannot stop them. Instead each operation that
can make something bigger than its inputs is checked *before* it runs:

- a new string has at most ``MAX_VALUE`` characters and a new container ``MAX_VALUE`` items;
- a new container prints as at most ``MAX_EXPANDED`` characters, counting a part it holds
  twice twice (``{% set a = [x, x] %}{% set b = [a, a] %}`` doubles per line, and ``repr``,
  ``==`` and ``hash`` walk the expansion in C);
- whatever a render creates adds up to at most ``MAX_RENDER`` characters and items, which
  bounds the memory a render can hold (deep macro recursion included);
- an integer has at most ``MAX_INT_BITS`` bits.

Sizes are counted in characters (strings) and items (containers): both are a few bytes each.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, KeysView, ValuesView
from contextlib import contextmanager
from contextvars import ContextVar, Token
from itertools import chain
from typing import Any

from jinja2.exceptions import SecurityError
from jinja2.utils import Namespace

MAX_OUTPUT_CHARS = 64 * 1024
MAX_VALUE = 256 * 1024
MAX_EXPANDED = 4 * 1024 * 1024
MAX_RENDER = 4 * 1024 * 1024
MAX_INT_BITS = 1 << 16
MAX_NESTING = 200


class LimitExceeded(SecurityError):
    """A template operation would build something above a size limit."""


class _Budget:
    __slots__ = ("left", "sizes")

    def __init__(self) -> None:
        self.left = MAX_RENDER
        # id -> (value, printed size, nesting depth); the value is held so its id stays unique.
        self.sizes: dict[int, tuple[Any, int, int]] = {}


_CURRENT: ContextVar[_Budget | None] = ContextVar("template_budget", default=None)
BudgetToken = Token[_Budget | None]


def enter_budget() -> BudgetToken:
    """Start a fresh ``MAX_RENDER`` budget; give the token to ``exit_budget``."""
    return _CURRENT.set(_Budget())


def exit_budget(token: BudgetToken) -> None:
    _CURRENT.reset(token)


@contextmanager
def budget_scope() -> Iterator[None]:
    """Give the renders inside a fresh ``MAX_RENDER`` budget."""
    token = enter_budget()
    try:
        yield
    finally:
        exit_budget(token)


def charge(units: int, what: str) -> None:
    """Account for a new value of ``units`` characters or items; raise if it is too large."""
    if units > MAX_VALUE:
        raise LimitExceeded(f"{what} is too large: {units:,} characters or items, "
                            f"the limit is {MAX_VALUE:,}")
    budget = _CURRENT.get()
    if budget is not None and units > 0:
        budget.left -= units
        if budget.left < 0:
            raise LimitExceeded(f"the template built more than {MAX_RENDER:,} characters "
                                "and items in all")


def check_int(value: object, what: str) -> None:
    """Raise if ``value`` is an integer of more than ``MAX_INT_BITS`` bits."""
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise LimitExceeded(f"{what} is too large: more than {MAX_INT_BITS:,} bits")


def admit(value: Any, what: str) -> Any:
    """Check a container the template just built: its items and its printed size."""
    if isinstance(value, list | tuple | dict | set | frozenset):
        charge(len(value), what)
        expanded(value, MAX_EXPANDED, what)
    return value


def printed(value: object, what: str) -> int:
    """Characters ``str(value)`` roughly has; raise for a container too large to print."""
    if isinstance(value, str):
        return len(value)
    return expanded(value, MAX_VALUE, what)[0]


def expanded(value: object, limit: int = MAX_EXPANDED, what: str = "value") -> tuple[int, int]:
    """(printed size, nesting depth) of ``value``, a shared part counted at each place it
    appears. Raises LimitExceeded as soon as the size passes ``limit``.

    Sizes of containers are remembered for the render, so a graph of shared parts costs its
    number of distinct containers, not its (possibly exponential) expansion.
    """
    budget = _CURRENT.get()
    sizes = budget.sizes if budget is not None else {}
    try:
        return _walk(value, sizes, limit, 0)
    except _TooLarge:
        raise LimitExceeded(f"{what} is too large: it prints as more than {limit:,} "
                            "characters") from None


class _TooLarge(Exception):
    pass


def _parts(v: object) -> tuple[Any, int] | None:
    """(iterable of the parts, count) of a container, None for a scalar."""
    if isinstance(v, dict):
        return chain.from_iterable(v.items()), 2 * len(v)
    if isinstance(v, list | tuple | set | frozenset):
        return v, len(v)
    if isinstance(v, KeysView | ValuesView | ItemsView):
        return v, len(v)
    if isinstance(v, Namespace):
        attrs: dict[str, Any] = object.__getattribute__(v, "_Namespace__attrs")
        return chain.from_iterable(attrs.items()), 2 * len(attrs)
    return None


def _walk(v: object, sizes: dict[int, tuple[Any, int, int]], limit: int,
          depth: int) -> tuple[int, int]:
    if isinstance(v, str | bytes | bytearray):
        return len(v) + 2, 0
    if isinstance(v, int):
        return v.bit_length() // 3 + 5, 0
    parts = _parts(v)
    if parts is None:
        return 32, 0  # numbers, None, Undefined, loop and cycler objects: short reprs
    if (hit := sizes.get(id(v))) is not None:
        if hit[1] > limit:
            raise _TooLarge()
        return hit[1], hit[2]
    if depth >= MAX_NESTING:
        raise LimitExceeded(f"a value is nested more than {MAX_NESTING} levels deep")
    items, count = parts
    total, deepest = 2 + 2 * count, 0
    if total > limit:
        raise _TooLarge()
    for item in items:
        if type(item) is str:  # the common case, without a call
            total += len(item) + 2
        else:
            size, d = _walk(item, sizes, limit - total, depth + 1)
            total += size
            deepest = max(deepest, d)
        if total > limit:
            raise _TooLarge()
    sizes[id(v)] = (v, total, deepest + 1)
    return total, deepest + 1


def forget_sizes() -> None:
    """A namespace changed: sizes remembered for it and everything holding it are stale."""
    budget = _CURRENT.get()
    if budget is not None:
        budget.sizes.clear()
