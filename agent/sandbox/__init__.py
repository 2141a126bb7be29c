"""Jinja2 templates from API keys and rule files, rendered within bounded time and memory.

A leaf: imports nothing else of the project, so every stage (ingest, delivery) may use it.
``LimitedEnvironment`` caps what each operation may build (see ``budget`` for the limits and
why a time limit alone is not enough); ``render_scope`` adds the per-render budget and the
time limit, and ``generate_capped`` the output limit.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from jinja2 import Template

from agent.sandbox.budget import (
    MAX_EXPANDED,
    MAX_INT_BITS,
    MAX_OUTPUT_CHARS,
    MAX_RENDER,
    MAX_VALUE,
    LimitExceeded,
    budget_scope,
)
from agent.sandbox.environment import LimitedEnvironment
from agent.sandbox.filters import MAX_RANGE

RENDER_SECONDS = 0.5

__all__ = [
    "MAX_EXPANDED", "MAX_INT_BITS", "MAX_OUTPUT_CHARS", "MAX_RANGE", "MAX_RENDER", "MAX_VALUE",
    "RENDER_SECONDS", "LimitExceeded", "LimitedEnvironment", "RenderTimeout", "generate_capped",
    "render_scope",
]


class RenderTimeout(Exception):
    """A render ran longer than its time budget."""


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    # SIGALRM interrupts Python code between bytecodes, so it bounds loops; the size limits
    # bound the C calls in between. Only the main thread receives signals.
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise RenderTimeout(f"rendering took longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def render_scope(seconds: float = RENDER_SECONDS) -> Iterator[None]:
    """One render's limits: a fresh size budget and (on the main thread) a time limit."""
    with budget_scope(), _deadline(seconds):
        yield


def generate_capped(template: Template, variables: Mapping[str, Any],
                    max_chars: int = MAX_OUTPUT_CHARS) -> str:
    """Render ``template``, refusing output longer than ``max_chars``."""
    out: list[str] = []
    size = 0
    for chunk in template.generate(variables):
        size += len(chunk)
        if size > max_chars:
            raise LimitExceeded(f"output larger than {max_chars:,} characters")
        out.append(chunk)
    return "".join(out)
