"""Jinja's default filters and globals, each checked against the size limits before it runs.

A filter that can return more than a small multiple of its input (``center``, ``indent``,
``replace``, ``join``, ``format``, ``wordwrap``, ``urlize``, ``batch``, ``slice``) predicts
its result size first; ``tojson`` and ``pprint`` build their text piece by piece against the
limit. Every filter's new string or list is charged to the render budget afterwards.
"""

from __future__ import annotations

import inspect
import io
import json
from collections.abc import Callable, Iterable, Mapping
from functools import wraps
from pprint import PrettyPrinter
from typing import Any

from jinja2 import pass_eval_context
from jinja2.filters import do_int
from jinja2.nodes import EvalContext
from jinja2.utils import Namespace, generate_lorem_ipsum
from markupsafe import Markup

from agent.sandbox.budget import (
    MAX_EXPANDED,
    MAX_VALUE,
    LimitExceeded,
    admit,
    charge,
    check_int,
    expanded,
    forget_sizes,
    printed,
)
from agent.sandbox.predict import printf_size

MAX_RANGE = 1000
MAX_LINK_ATTRIBUTE = 256
MAX_JSON_INDENT = 16
MAX_ROUND_DIGITS = 400

Bound = dict[str, Any]


def _text(value: object, what: str) -> int:
    """The length of ``str(value)``, refusing a container too large to print."""
    return printed(value, what)


def _center(a: Bound) -> int:
    w = a["width"]
    return max(_text(a["value"], "center"), w if isinstance(w, int) else 0)


def _indent(a: Bound) -> int:
    w = a["width"]
    pad = w if isinstance(w, int) else _text(w, "indent")
    charge(pad, "indent width")
    s = str(a["s"])
    return len(s) + (len(s.splitlines()) + 1) * (pad + 1)


def _replace(a: Bound) -> int:
    s, old, new, count = str(a["s"]), str(a["old"]), str(a["new"]), a["count"]
    n = s.count(old)
    if isinstance(count, int) and count >= 0:
        n = min(n, count)
    return len(s) + n * max(len(new) - len(old), 0)


def _join(a: Bound) -> int:
    items = a["value"] = list(a["value"])  # an iterator can be read once: keep the list
    return sum(_text(x, "join") for x in items) + _text(a["d"], "join") * max(len(items) - 1, 0)


def _format(a: Bound) -> int:
    value = a["value"]  # a Markup stays one: it escapes every field
    return printf_size(value if isinstance(value, str) else str(value), a["kwargs"] or a["args"])


def _wordwrap(a: Bound) -> int:
    s = _text(a["s"], "wordwrap")
    wrap = a["wrapstring"]
    sep = 1 if wrap is None else _text(wrap, "wordwrap")
    return s + (s + 1) * sep  # every line holds at least one character


def _urlize(a: Bound) -> int:
    extra = 0
    for key in ("target", "rel"):
        size = _text(a[key] or "", "urlize")
        if size > MAX_LINK_ATTRIBUTE:
            raise LimitExceeded(f"urlize {key} is longer than {MAX_LINK_ATTRIBUTE} characters")
        extra += size
    # A link of 6 characters ("a.com ") becomes <a href="https://a.com" rel=... target=...>.
    return _text(a["value"], "urlize") * (1 + (64 + extra) // 4)


def _filled(count: object, fill_with: object, what: str) -> int:
    if not isinstance(count, int) or count > MAX_VALUE:
        raise LimitExceeded(f"{what} count {count!r} is above {MAX_VALUE:,}")
    if fill_with is not None and count * expanded(fill_with)[0] > MAX_EXPANDED:
        raise LimitExceeded(f"{what} fill_with repeated {count} times is too large")
    return 0


def _batch(a: Bound) -> int:
    return _filled(a["linecount"], a["fill_with"], "batch")


def _slice(a: Bound) -> int:
    return _filled(a["slices"], a["fill_with"], "slice")


def _sum(a: Bound) -> int:
    # sum() of lists or strings copies quadratically in C; numbers only.
    if not isinstance(a["start"], int | float):
        raise LimitExceeded("sum: start must be a number in templates")
    return 0


def _round(a: Bound) -> int:
    # round(5, -10**9) and the ceil/floor methods compute 10 ** precision; floats need <= 400.
    p = a["precision"]
    if not isinstance(p, int) or abs(p) > MAX_ROUND_DIGITS:
        raise LimitExceeded(f"round precision must be within +-{MAX_ROUND_DIGITS}")
    return 0


_PREDICT: dict[str, Callable[[Bound], int]] = {
    "center": _center, "indent": _indent, "replace": _replace, "join": _join,
    "format": _format, "wordwrap": _wordwrap, "urlize": _urlize, "batch": _batch,
    "slice": _slice, "sum": _sum, "round": _round,
}
# Filters that print their value (a list or dict through str()): refused when that is too large.
_PRINTING = frozenset(("capitalize escape e forceescape lower string striptags title trim "
                       "truncate upper urlencode wordcount xmlattr").split())


def _capped_join(pieces: Iterable[str], what: str) -> str:
    out: list[str] = []
    size = 0
    for piece in pieces:
        size += len(piece)
        if size > MAX_VALUE:
            raise LimitExceeded(f"{what} is too large: more than {MAX_VALUE:,} characters")
        out.append(piece)
    charge(size, what)
    return "".join(out)


@pass_eval_context
def _tojson(eval_ctx: EvalContext, value: Any, indent: int | None = None) -> Markup:
    """Jinja's ``tojson`` (HTML-safe JSON), built piece by piece against the size limit."""
    if indent is not None and not (isinstance(indent, int) and 0 <= indent <= MAX_JSON_INDENT):
        raise LimitExceeded(f"tojson indent must be 0 to {MAX_JSON_INDENT}")
    kwargs: dict[str, Any] = dict(eval_ctx.environment.policies["json.dumps_kwargs"])
    pieces = json.JSONEncoder(**kwargs, indent=indent).iterencode(value)
    text = _capped_join(pieces, "tojson")
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e")
                  .replace("&", "\\u0026").replace("'", "\\u0027"))


class _CappedStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.size = 0

    def write(self, s: str) -> int:
        self.size += len(s)
        if self.size > MAX_VALUE:
            raise LimitExceeded(f"pprint is too large: more than {MAX_VALUE:,} characters")
        return super().write(s)


def _pprint(value: Any) -> str:
    """Jinja's ``pprint``, written to a stream that stops at the size limit."""
    printed(value, "pprint")  # the printer builds whole reprs before it writes
    stream = _CappedStream()
    PrettyPrinter(stream=stream).pprint(value)
    charge(stream.size, "pprint")
    return stream.getvalue()[:-1]  # pprint() ends the line, pformat() does not


def _int(value: Any, default: int = 0, base: int = 10) -> int:
    result = do_int(value, default, base)
    check_int(result, "int")
    return result


def _charged(name: str, f: Callable[..., Any]) -> Callable[..., Any]:
    """``f`` with its size prediction run first and its new result charged after."""
    predict = _PREDICT.get(name)
    signature = inspect.signature(f) if predict is not None else None
    prints = name in _PRINTING
    # pass_context/pass_eval_context/pass_environment filters take that object first; an
    # async variant may take it without its signature saying so.
    offset = 1 if getattr(f, "jinja_pass_arg", None) is not None else 0
    unnamed = offset if signature is not None and offset and next(
        iter(signature.parameters)) not in ("context", "eval_ctx", "environment") else 0

    @wraps(f)
    def filter_(*args: Any, **kwargs: Any) -> Any:
        if prints and len(args) > offset:
            printed(args[offset], name)
        if predict is not None and signature is not None:
            bound = signature.bind(*args[unnamed:], **kwargs)
            bound.apply_defaults()
            charge(predict(bound.arguments), name)
            args, kwargs = (*args[:unnamed], *bound.args), bound.kwargs
        result = f(*args, **kwargs)
        if len(args) > offset and result is args[offset]:
            return result  # the value itself (default, first ...): nothing new
        if isinstance(result, str | list | tuple | dict | set):
            charge(len(result), name)
        elif isinstance(result, int):
            check_int(result, name)
        return result

    return filter_


def capped_filters(filters: Mapping[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """Jinja's filters wrapped in their size checks; tojson/pprint/int replaced."""
    replaced: dict[str, Callable[..., Any]] = {"tojson": _tojson, "pprint": _pprint, "int": _int}
    return {name: _charged(name, replaced.get(name, f)) for name, f in filters.items()}


# --- globals ----------------------------------------------------------------------------------


def _range(*args: int) -> range:
    r = range(*args)
    if len(r) > MAX_RANGE:
        raise LimitExceeded(f"range of {len(r)} items is above {MAX_RANGE}")
    return r


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    if not (isinstance(n, int) and isinstance(max, int)) or n * max * 12 > MAX_VALUE:
        raise LimitExceeded(f"lipsum of {n!r} paragraphs of {max!r} words is too large")
    text = generate_lorem_ipsum(n, html, min, max)
    charge(len(text), "lipsum")
    return text


def _dict(*args: Any, **kwargs: Any) -> dict[Any, Any]:
    return admit(dict(*args, **kwargs), "dict()")  # type: ignore[no-any-return]


class _Namespace(Namespace):
    """``namespace()``: a changed attribute invalidates the remembered sizes."""

    def __setitem__(self, name: str, value: Any) -> None:
        forget_sizes()
        super().__setitem__(name, value)


def _namespace(*args: Any, **kwargs: Any) -> Namespace:
    admit(dict(*args, **kwargs), "namespace()")
    return _Namespace(*args, **kwargs)


def capped_globals() -> dict[str, Any]:
    """Globals replacing Jinja's ``range``, ``lipsum``, ``dict`` and ``namespace``."""
    return {"range": _range, "lipsum": _lipsum, "dict": _dict, "namespace": _namespace}
