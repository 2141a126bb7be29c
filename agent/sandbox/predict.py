"""Sizes of results predicted before the C code that builds them runs.

``%`` formatting, ``str.format`` fields and the methods of built-in types: each method a
template may call is listed with a function giving its result size from the receiver and the
arguments. A method of a built-in type that is not listed cannot be called from a template
(``str.encode``, ``int.to_bytes``, ``dict.fromkeys`` ...), so an overlooked method fails
closed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sized
from typing import Any

from jinja2.exceptions import SecurityError
from markupsafe import Markup, escape

from agent.sandbox.budget import MAX_VALUE, LimitExceeded, printed

# Python's printf-style conversion: %[(key)][flags][width][.precision][length]type
_PRINTF = re.compile(
    r"%(?:\((?P<key>[^()]*)\))?[-+ #0]*(?P<width>\*|\d+)?(?:\.(?P<prec>\*|\d*))?[hlL]?"
    r"(?P<conv>[diouxXeEfFgGcrsa%])"
)
_DIGITS = re.compile(r"\d+")
_FLOAT_CHARS = 330  # '%f' of 1.8e308 has 309 digits before the point


def width(text: str | None, what: str) -> int:
    """A width or precision from a format: refused above ``MAX_VALUE``."""
    if not text:
        return 0
    if len(text) > 7 or int(text) > MAX_VALUE:
        raise LimitExceeded(f"{what}: width or precision {text[:12]} is above {MAX_VALUE:,}")
    return int(text)


def check_format_spec(spec: str) -> None:
    """Refuse a ``str.format`` field spec with a width or precision above ``MAX_VALUE``."""
    for digits in _DIGITS.findall(spec):
        width(digits, "str.format()")


def printf_size(fmt: str, args: object) -> int:
    """An upper bound of ``len(fmt % args)`` (``Markup`` escapes each field: up to 6 times).

    Refuses ``*`` widths and widths or precisions above ``MAX_VALUE``. Where Python itself
    will raise (too few arguments, a missing key), stops counting and lets it.
    """
    values = args if isinstance(args, tuple) else (args,)
    mapping = args if isinstance(args, Mapping) else None
    total, index, pos = len(fmt), 0, 0
    while (pos := fmt.find("%", pos)) >= 0:
        m = _PRINTF.match(fmt, pos)
        if m is None:
            raise ValueError(f"unsupported or incomplete '%' format at position {pos}")
        pos = m.end()
        key, conv = m.group("key"), m.group("conv")
        if "*" in (m.group("width"), m.group("prec")):
            raise LimitExceeded("'%' formatting: '*' widths are not allowed in templates")
        w = width(m.group("width"), "'%' formatting")
        prec = m.group("prec")
        p = None if prec is None else width(prec, "'%' formatting")
        if conv == "%":
            total += w
            continue
        if key is not None:
            if mapping is None or key not in mapping:
                break
            value = mapping[key]
        else:
            if index >= len(values):
                break
            value, index = values[index], index + 1
        total += max(w, _converted(value, conv, p)) * (6 if isinstance(fmt, Markup) else 1)
        if total > MAX_VALUE:
            break  # too large already: the caller refuses it
    return total


def _converted(value: object, conv: str, p: int | None) -> int:
    if conv == "c":
        return 1
    if conv in "sra":
        # repr() escapes one character in at most 10 ('\\U0001f600' for %a)
        n = len(value) if isinstance(value, str) and conv == "s" else \
            10 * printed(value, "'%' formatting")
        return n if p is None else min(n, p)
    if conv in "eEfFgG":
        return _FLOAT_CHARS + (6 if p is None else p)
    digits = value.bit_length() // 3 + 3 if isinstance(value, int) else _FLOAT_CHARS
    return max(digits, p or 0) + 2


# --- methods of built-in types ----------------------------------------------------------------

Args = tuple[Any, ...]
Check = Callable[[Any, Args, dict[str, Any]], int]


def _arg(args: Args, kwargs: dict[str, Any], i: int, name: str, default: Any = None) -> Any:
    return args[i] if len(args) > i else kwargs.get(name, default)


def _free(s: Any, args: Args, kwargs: dict[str, Any]) -> int:
    return 0  # a number, a bool, a view, or a part of the receiver


def _linear(s: Any, args: Args, kwargs: dict[str, Any]) -> int:
    return len(s)  # at most a small multiple of the receiver (upper() of 'ß' is 'SS')


def _pad(s: str, args: Args, kwargs: dict[str, Any]) -> int:
    w = _arg(args, kwargs, 0, "width", 0)
    return max(len(s), w) if isinstance(w, int) else len(s)


def _expandtabs(s: str, args: Args, kwargs: dict[str, Any]) -> int:
    size = _arg(args, kwargs, 0, "tabsize", 8)
    return len(s) + s.count("\t") * max(size, 0) if isinstance(size, int) else len(s)


def _replace(s: str, args: Args, kwargs: dict[str, Any]) -> int:
    old, new = _arg(args, kwargs, 0, "old"), _arg(args, kwargs, 1, "new")
    count = _arg(args, kwargs, 2, "count", -1)
    if not (isinstance(old, str) and isinstance(new, str) and isinstance(count, int)):
        return len(s)  # str.replace raises TypeError
    if isinstance(s, Markup):  # Markup escapes its arguments first
        old, new = str(escape(old)), str(escape(new))
    n = s.count(old) if count < 0 else min(s.count(old), count)
    return len(s) + n * max(len(new) - len(old), 0)


def _join(s: str, args: Args, kwargs: dict[str, Any]) -> int:
    # The caller has turned the argument into a list (an iterator is consumed only once).
    items = _arg(args, kwargs, 0, "iterable", ())
    return sum(printed(x, "str.join()") for x in items) + len(s) * max(len(items) - 1, 0)


def _translate(s: str, args: Args, kwargs: dict[str, Any]) -> int:
    table = _arg(args, kwargs, 0, "table")
    if isinstance(table, str):
        return len(s)
    if not isinstance(table, dict):
        raise SecurityError("str.translate() takes a dict or a str table in templates")
    longest = max((len(v) for v in table.values() if isinstance(v, str)), default=1)
    return len(s) * max(longest, 1)


def _sized_sum(s: Sized, args: Args, kwargs: dict[str, Any]) -> int:
    return len(s) + sum(len(a) if isinstance(a, Sized) else MAX_VALUE + 1 for a in args)


_STR: dict[str, Check] = {
    **dict.fromkeys(
        ("count endswith find index isalnum isalpha isascii isdecimal isdigit isidentifier "
         "islower isnumeric isprintable isspace istitle isupper lstrip removeprefix "
         "removesuffix rfind rindex rstrip startswith strip").split(), _free),
    **dict.fromkeys(
        ("capitalize casefold lower partition rpartition rsplit split splitlines swapcase "
         "title upper striptags unescape").split(), _linear),
    "center": _pad, "ljust": _pad, "rjust": _pad, "zfill": _pad,
    "expandtabs": _expandtabs, "replace": _replace, "join": _join, "translate": _translate,
}
_INT: dict[str, Check] = dict.fromkeys(
    "bit_length bit_count conjugate as_integer_ratio is_integer".split(), _free)
_FLOAT: dict[str, Check] = dict.fromkeys(
    "as_integer_ratio conjugate hex is_integer".split(), _free)
_SET: dict[str, Check] = {
    **dict.fromkeys("isdisjoint issubset issuperset".split(), _free),
    **dict.fromkeys("copy difference intersection symmetric_difference union".split(),
                    _sized_sum),
}
_METHODS: tuple[tuple[type, dict[str, Check]], ...] = (
    (str, _STR),
    (int, _INT),  # bool too
    (float, _FLOAT),
    (list, {"count": _free, "index": _free, "copy": _linear}),
    (tuple, {"count": _free, "index": _free}),
    (dict, {"get": _free, "keys": _free, "values": _free, "items": _free, "copy": _linear}),
    (set, _SET),
    (frozenset, _SET),
    (range, {"count": _free, "index": _free}),
    (complex, {"conjugate": _free}),
    (bytes, {}),
    (bytearray, {}),
)
_CLASS_METHODS = {(Markup, "escape")}


def method_check(receiver: object, name: str) -> Check | None:
    """The size check of ``receiver.name()``; None if the receiver is not a built-in value.

    Raises SecurityError for a method of a built-in type that templates may not call.
    """
    for base, table in _METHODS:
        if isinstance(receiver, base):
            check = table.get(name)
            if check is None:
                raise SecurityError(f"{base.__name__}.{name}() is not available in templates")
            return check
    if isinstance(receiver, type) and issubclass(receiver, tuple(b for b, _ in _METHODS)):
        if (receiver, name) in _CLASS_METHODS:
            return _escape_size
        raise SecurityError(f"{receiver.__name__}.{name}() is not available in templates")
    return None


def _escape_size(cls: type, args: Args, kwargs: dict[str, Any]) -> int:
    return 6 * printed(_arg(args, kwargs, 0, "s", ""), "escape()")
