"""Jinja2 templates from API keys and rule files, rendered within bounded time and memory.

A leaf: imports nothing else of the project, so every stage (ingest, delivery) may use it.
``LimitedEnvironment`` caps what each operation may build (see ``budget`` for the limits and
why a time limit alone is not enough); ``render_scope`` adds the per-render budget and the
time limit, and ``generate_capped`` the output limit.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # signal's C core, see render_scope
import signal
import threading
from collections.abc import Mapping
from typing import Any

from jinja2 import Template

from agent.sandbox.budget import (
    MAX_EXPANDED,
    MAX_INT_BITS,
    MAX_OUTPUT_CHARS,
    MAX_RENDER,
    MAX_VALUE,
    LimitExceeded,
    enter_budget,
    exit_budget,
)
from agent.sandbox.environment import LimitedEnvironment
from agent.sandbox.filters import MAX_RANGE

RENDER_SECONDS = 0.5
_MAIN_THREAD = threading.main_thread().ident

__all__ = [
    "MAX_EXPANDED", "MAX_INT_BITS", "MAX_OUTPUT_CHARS", "MAX_RANGE", "MAX_RENDER", "MAX_VALUE",
    "RENDER_SECONDS", "LimitExceeded", "LimitedEnvironment", "RenderTimeout", "generate_capped",
    "render_scope",
]


class RenderTimeout(Exception):
    """A render ran longer than its time budget."""


class _Alarm:
    """SIGALRM for render deadlines. The handler stays installed between renders (installing
    one per render costs more than most renders) and passes signals outside a render on."""

    armed = False
    seconds = 0.0
    previous: Any = None


# After the deadline the alarm fires again this often until the scope ends: a RenderTimeout
# raised inside a gc callback or a __del__ is swallowed by Python, and the render would run on.
_REFIRE_SECONDS = 0.01


def _on_alarm(signum: int, frame: Any) -> None:
    if _Alarm.armed:
        signal.setitimer(signal.ITIMER_REAL, _REFIRE_SECONDS)
        if frame is not None and frame.f_code in _SCOPE_CODES:
            # A scope starting or ending: a raise from __enter__ would leave it armed (no
            # __exit__ runs), one from __exit__ would skip its disarming. The next fire lands
            # in the render, or finds the scope disarmed.
            return
        raise RenderTimeout(f"rendering took longer than {_Alarm.seconds:g} s")
    if callable(_Alarm.previous):
        _Alarm.previous(signum, frame)


class render_scope:  # noqa: N801 - used like a function: with render_scope(): ...
    """One render's limits: a fresh size budget and, on the main thread, a deadline.

    SIGALRM interrupts Python code between bytecodes, so it bounds loops; the size limits
    bound the C calls in between. Only the main thread receives signals; a scope inside a
    timed scope keeps the outer deadline.
    """

    __slots__ = ("_seconds", "_timed", "_token")

    def __init__(self, seconds: float = RENDER_SECONDS) -> None:
        self._seconds = seconds

    def __enter__(self) -> None:
        self._token = enter_budget()
        self._timed = threading.get_ident() == _MAIN_THREAD and not _Alarm.armed
        if self._timed:
            # The raw module: signal.getsignal() converts to an enum, slowly, on every call.
            if _signal.getsignal(signal.SIGALRM) is not _on_alarm:
                _Alarm.previous = _signal.signal(signal.SIGALRM, _on_alarm)
            _Alarm.armed, _Alarm.seconds = True, self._seconds
            signal.setitimer(signal.ITIMER_REAL, self._seconds)

    def __exit__(self, *exc: object) -> None:
        if self._timed:
            _Alarm.armed = False  # first: an alarm from here on is no longer ours
            signal.setitimer(signal.ITIMER_REAL, 0)
        exit_budget(self._token)


_SCOPE_CODES = (render_scope.__enter__.__code__, render_scope.__exit__.__code__)


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
