"""Template rendering in a Jinja2 sandbox; ``{{variable}}`` as in the seed API.

Templates are compiled once per body (LRU cache); undefined variables are errors, not blanks,
so a typo never sends a half-empty page at 3 a.m. Templates come from API keys and rule files,
and render on the event loop: ``agent.sandbox`` caps what every operation may build (C code
such as ``str.replace`` never sees a signal) and gives a render a time budget, so a hostile or
careless template fails its notification instead of stalling every delivery (and tripping the
watchdog).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, UndefinedError, meta, nodes
from jinja2.exceptions import SecurityError

from agent.sandbox import (
    MAX_OUTPUT_CHARS,
    RENDER_SECONDS,
    LimitedEnvironment,
    RenderTimeout,
    generate_capped,
    render_scope,
)

__all__ = ["MAX_OUTPUT_CHARS", "RENDER_SECONDS", "TemplateError", "extract_variables", "render"]

_ENV = LimitedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True)


class TemplateError(Exception):
    """A template cannot be parsed or rendered; the message says where and why."""


def extract_variables(body: str) -> list[str]:
    """Top-level variable names the body uses, in order of first appearance.

    Raises TemplateError on a syntax error, or nesting too deep for the parser.
    """
    try:
        ast = _ENV.parse(body)
        # Also raises TemplateAssertionError (a TemplateSyntaxError): an unknown filter or test.
        names = meta.find_undeclared_variables(ast)
        # find_all walks the tree in source order; the set above says which names are free.
        ordered = dict.fromkeys(n.name for n in ast.find_all(nodes.Name) if n.name in names)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"line {exc.lineno}: {exc.message}") from exc
    except RecursionError:  # the parser and the tree walks recurse once per nesting level
        raise TemplateError("expressions or blocks are nested too deeply") from None
    return list(ordered)


@lru_cache(maxsize=512)
def _compile(body: str) -> Template:
    try:
        return _ENV.from_string(body)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"line {exc.lineno}: {exc.message}") from exc


def render(body: str, variables: dict[str, Any]) -> str:
    """Render ``body`` with ``variables`` in the sandbox, within limits. Raises TemplateError."""
    try:
        with render_scope(RENDER_SECONDS):
            return generate_capped(_compile(body), variables, MAX_OUTPUT_CHARS)
    except RenderTimeout as exc:
        raise TemplateError(str(exc)) from None
    except UndefinedError as exc:
        raise TemplateError(f"undefined variable: {exc.message}") from exc
    except SecurityError as exc:
        raise TemplateError(f"unsafe template: {exc}") from exc
    except TemplateError:
        raise
    except Exception as exc:  # a template is user code: any failure is a render error
        raise TemplateError(f"{type(exc).__name__}: {exc}") from exc
