"""``LimitedEnvironment``: Jinja's immutable sandbox with every size-expanding operation capped.

Where each kind of operation is checked (limits in ``budget``):

- ``*``, ``+``, ``%`` and ``**``: intercepted binary operators (``call_binop``);
- methods of built-in values: an allow-list with size predictions (``call``, ``predict``);
- ``str.format``: a formatter checking each field's spec and the running size;
- filters and globals: wrapped (``filters``);
- ``~``, list/tuple/dict literals, slices and the output buffers of macros, blocks and
  ``{% set %}`` blocks: emitted by a code generator that routes them through checks.

The optimizer is off and ``finalize`` needs the context, so no filter runs at compile time
(outside a render's limits) and no folded constant can grow the compiled code.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from functools import update_wrapper
from types import BuiltinMethodType, MethodType
from typing import Any

from jinja2 import nodes, pass_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import Context, markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from markupsafe import EscapeFormatter, Markup

from agent.sandbox.budget import (
    MAX_EXPANDED,
    MAX_INT_BITS,
    MAX_VALUE,
    LimitExceeded,
    admit,
    charge,
    check_int,
    expanded,
    printed,
)
from agent.sandbox.filters import capped_filters, capped_globals
from agent.sandbox.predict import check_format_spec, method_check, printf_size


class _CappedBuffer(list[str]):
    """The output buffer of a macro, call block, filter block or ``{% set %}`` block."""

    def __init__(self) -> None:
        super().__init__()
        self.size = 0

    def _add(self, n: int) -> None:
        self.size += n
        if self.size > MAX_VALUE:
            raise LimitExceeded(f"a block's output is too large: more than {MAX_VALUE:,} "
                                "characters")
        charge(n, "block output")

    def append(self, item: str) -> None:
        self._add(len(item))
        super().append(item)

    def extend(self, items: Iterable[str]) -> None:
        items = tuple(items)
        self._add(sum(len(x) for x in items))
        super().extend(items)


def _concat(parts: Iterable[str]) -> str:
    # environment.concat: joins macro and block output (and self.block() and super()).
    if isinstance(parts, _CappedBuffer):
        return "".join(parts)
    out: list[str] = []
    size = 0
    for part in parts:
        size += len(part)
        if size > MAX_VALUE:
            raise LimitExceeded(f"a block's output is too large: more than {MAX_VALUE:,} "
                                "characters")
        out.append(part)
    charge(size, "block output")
    return "".join(out)


class _LimitedCodeGenerator(CodeGenerator):
    def buffer(self, frame: Frame) -> None:
        frame.buffer = self.temporary_identifier()
        self.writeline(f"{frame.buffer} = environment.output_buffer()")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self.write("environment.admit_literal(")
        super().visit_List(node, frame)
        self.write(")")

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self.write("environment.admit_literal(")
        super().visit_Dict(node, frame)
        self.write(")")

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx != "load":  # an assignment target: {% for a, b in ... %}
            super().visit_Tuple(node, frame)
            return
        self.write("environment.admit_literal(")
        super().visit_Tuple(node, frame)
        self.write(")")

    def visit_Getitem(self, node: nodes.Getitem, frame: Frame) -> None:
        if not isinstance(node.arg, nodes.Slice):
            super().visit_Getitem(node, frame)
            return
        self.write("environment.admit_slice(")
        super().visit_Getitem(node, frame)
        self.write(")")

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        if frame.eval_ctx.volatile:
            markup = "context.eval_ctx.autoescape"
        else:
            markup = repr(bool(frame.eval_ctx.autoescape))
        self.write(f"environment.checked_concat({markup}, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class _CappedFormatter(SandboxedFormatter):
    def __init__(self, env: Any, **kwargs: Any) -> None:
        super().__init__(env, **kwargs)
        self.size = 0

    def format_field(self, value: Any, format_spec: str) -> Any:
        check_format_spec(format_spec)
        if not isinstance(value, str | int | float):
            printed(value, "str.format()")
        rv = super().format_field(value, format_spec)
        self.size += len(rv)
        if self.size > MAX_VALUE:
            raise LimitExceeded(f"str.format() is too large: more than {MAX_VALUE:,} characters")
        return rv


class _CappedEscapeFormatter(_CappedFormatter, EscapeFormatter):
    pass


def _make_finalize(finalize: Callable[[Any], Any] | None) -> Callable[[Context, Any], Any]:
    @pass_context
    def finalize_(context: Context, value: Any) -> Any:
        if not isinstance(value, str):
            printed(value, "an output value")
        return finalize(value) if finalize is not None else value

    return finalize_


class LimitedEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with no operation able to build more than the limits allow."""

    code_generator_class = _LimitedCodeGenerator
    intercepted_binops = frozenset({"*", "+", "%", "**"})
    concat = staticmethod(_concat)

    def __init__(self, *, finalize: Callable[[Any], Any] | None = None, **kwargs: Any) -> None:
        super().__init__(autoescape=False, optimized=False, cache_size=0,
                         finalize=_make_finalize(finalize), **kwargs)
        self.globals.update(capped_globals())
        self.filters = capped_filters(self.filters)

    # --- called by the generated code --------------------------------------------------------

    @staticmethod
    def output_buffer() -> list[str]:
        return _CappedBuffer()

    @staticmethod
    def admit_literal(value: Any) -> Any:
        return admit(value, "a literal")

    @staticmethod
    def admit_slice(value: Any) -> Any:
        if isinstance(value, str | list | tuple):
            charge(len(value), "a slice")
        return value

    @staticmethod
    def checked_concat(markup: bool, items: tuple[Any, ...]) -> str:
        parts: list[str] = []
        for x in items:
            if not isinstance(x, str):
                printed(x, "a value joined with '~'")
                x = str(x)
            parts.append(x)
        size = sum(len(p) for p in parts)
        charge(6 * size if markup else size, "'~' concatenation")  # escaping: '<' -> '&lt;'
        return markup_join(parts) if markup else str_join(parts)

    # --- sandbox hooks -----------------------------------------------------------------------

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            _check_repeat(left, right)
        elif operator == "+":
            _check_add(left, right)
        elif operator == "%" and isinstance(left, str):
            charge(printf_size(left, right), "'%' formatting")
        elif operator == "**":
            _check_power(left, right)
        result = super().call_binop(context, operator, left, right)
        check_int(result, f"the result of '{operator}'")
        return result

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(__obj, BuiltinMethodType | MethodType):
            receiver, name = __obj.__self__, __obj.__name__
            check = method_check(receiver, name)
            if check is not None:
                if name == "join" and isinstance(receiver, str) and args:
                    args = (list(args[0]), *args[1:])  # read an iterator once
                charge(check(receiver, args, kwargs), f"{type(receiver).__name__}.{name}()")
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``str.format``/``format_map`` through a formatter that checks every field."""
        if not isinstance(value, MethodType | BuiltinMethodType) or value.__name__ not in (
            "format", "format_map"
        ):
            return None
        f_self: Any = value.__self__
        if not isinstance(f_self, str):
            return None
        str_type: type[str] = type(f_self)
        is_format_map = value.__name__ == "format_map"

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one positional argument")
                kwargs, args = args[0], ()
            formatter: _CappedFormatter = (
                _CappedEscapeFormatter(self, escape=f_self.escape)
                if isinstance(f_self, Markup) else _CappedFormatter(self)
            )
            rv = str_type(formatter.vformat(f_self, args, kwargs))
            charge(len(rv), "str.format()")
            return rv

        return update_wrapper(wrapper, value)


def _check_repeat(left: Any, right: Any) -> None:
    for seq, n in ((left, right), (right, left)):
        if isinstance(n, int) and isinstance(seq, str | bytes | list | tuple):
            charge(max(n, 0) * len(seq), "repetition")
            if isinstance(seq, list | tuple) and n > 1 and \
                    n * expanded(seq)[0] > MAX_EXPANDED:
                raise LimitExceeded("repetition is too large: it prints as more than "
                                    f"{MAX_EXPANDED:,} characters")
            return
    if isinstance(left, int) and isinstance(right, int) and \
            left.bit_length() + right.bit_length() > MAX_INT_BITS:
        raise LimitExceeded(f"product is too large: more than {MAX_INT_BITS:,} bits")


def _check_add(left: Any, right: Any) -> None:
    if isinstance(left, str) and isinstance(right, str):
        charge(len(left) + len(right), "concatenation")
    elif isinstance(left, list | tuple) and isinstance(right, list | tuple):
        charge(len(left) + len(right), "concatenation")
        if expanded(left)[0] + expanded(right)[0] > MAX_EXPANDED:
            raise LimitExceeded("concatenation is too large: it prints as more than "
                                f"{MAX_EXPANDED:,} characters")


def _check_power(base: Any, exponent: Any) -> None:
    # |base| ** exponent has about exponent * log2|base| bits; 0, 1 and -1 stay small.
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and \
            abs(base) > 1 and exponent * math.log2(abs(base)) > MAX_INT_BITS:
        raise LimitExceeded(f"exponent {exponent} is too large: the result would have more "
                            f"than {MAX_INT_BITS:,} bits")
