"""Template rendering in a Jinja2 sandbox; ``{{variable}}`` as in the seed API.

Templates are compiled once per body (LRU cache); undefined variables are errors, not blanks,
so a typo never sends a half-empty page at 3 a.m. Templates come from API keys and rule files,
and render on the event loop: besides the sandbox's attribute rules, output size, ``range``,
``*`` and ``**`` are capped and a render gets a time budget, so a hostile or careless template
fails its notification instead of stalling every delivery (and tripping the watchdog).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

MAX_OUTPUT_CHARS = 64 * 1024
MAX_RANGE = 1000
MAX_EXPONENT = 64
RENDER_SECONDS = 0.5


class _LimitedSandbox(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"exponent {right} is above {MAX_EXPONENT}")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(n, int) \
                        and len(seq) * n > MAX_OUTPUT_CHARS:
                    raise SecurityError("repetition result too large")
        return super().call_binop(context, operator, left, right)


def _range(*args: int) -> range:
    r = range(*args)
    if len(r) > MAX_RANGE:
        raise SecurityError(f"range of {len(r)} items is above {MAX_RANGE}")
    return r


_ENV = _LimitedSandbox(
    undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True, cache_size=0
)
_ENV.globals["range"] = _range


class _Overtime(Exception):
    pass


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Interrupt a render running longer than ``seconds`` (main thread only: SIGALRM)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise _Overtime()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class TemplateError(Exception):
    """A template cannot be parsed or rendered; the message says where and why."""


def extract_variables(body: str) -> list[str]:
    """Top-level variable names the body uses, in order of first appearance.

    Raises TemplateError on a syntax error.
    """
    try:
        ast = _ENV.parse(body)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"line {exc.lineno}: {exc.message}") from exc
    names = meta.find_undeclared_variables(ast)
    # find_all walks the tree in source order; the set above says which names are free.
    ordered = dict.fromkeys(n.name for n in ast.find_all(nodes.Name) if n.name in names)
    return list(ordered)


@lru_cache(maxsize=512)
def _compile(body: str) -> Any:
    try:
        return _ENV.from_string(body)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"line {exc.lineno}: {exc.message}") from exc


def render(body: str, variables: dict[str, Any]) -> str:
    """Render ``body`` with ``variables`` in the sandbox, within limits. Raises TemplateError."""
    try:
        out: list[str] = []
        size = 0
        with _deadline(RENDER_SECONDS):
            for chunk in _compile(body).generate(variables):
                size += len(chunk)
                if size > MAX_OUTPUT_CHARS:
                    raise TemplateError(f"output larger than {MAX_OUTPUT_CHARS} characters")
                out.append(chunk)
        return "".join(out)
    except _Overtime:
        raise TemplateError(f"rendering took longer than {RENDER_SECONDS:g} s") from None
    except UndefinedError as exc:
        raise TemplateError(f"undefined variable: {exc.message}") from exc
    except SecurityError as exc:
        raise TemplateError(f"unsafe template: {exc}") from exc
    except TemplateError:
        raise
    except Exception as exc:  # a template is user code: any failure is a render error
        raise TemplateError(f"{type(exc).__name__}: {exc}") from exc
