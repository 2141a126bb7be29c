"""Per-API-key request limits in fixed one-minute windows, reported in the seed's headers."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from agent.domain import now

WINDOW_SECONDS = 60.0


@dataclass(slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_at: int  # unix seconds when the window resets
    retry_after: int  # seconds; meaningful only when not allowed

    def headers(self) -> dict[str, str]:
        h = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_at),
        }
        if not self.allowed:
            h["Retry-After"] = str(self.retry_after)
        return h


class RateLimiter:
    """In memory on purpose: a restart forgiving the current minute harms nobody."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = now) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = {}

    def hit(self, key_id: str) -> Decision:
        t = self._clock()
        start = math.floor(t / WINDOW_SECONDS) * WINDOW_SECONDS
        w_start, count = self._windows.get(key_id, (start, 0))
        if w_start != start:
            w_start, count = start, 0
        reset = int(start + WINDOW_SECONDS)
        if count >= self.per_minute:
            return Decision(False, self.per_minute, 0, reset, max(1, math.ceil(reset - t)))
        count += 1
        self._windows[key_id] = (w_start, count)
        return Decision(True, self.per_minute, self.per_minute - count, reset, 0)


class IntervalGate:
    """At most one pass per ``interval`` seconds, for everyone (``POST /-/reload``): a reload
    re-reads and compiles every rule file, so a client looping on it must not keep a core busy."""

    def __init__(self, interval: float, clock: Callable[[], float]) -> None:
        self.interval = interval
        self._clock = clock  # monotonic: a wall-clock step must not block or free the gate
        self._last: float | None = None

    def attempt(self) -> float:
        """0 and the pass is taken, or the seconds left until one is allowed."""
        t = self._clock()
        if self._last is not None and (left := self._last + self.interval - t) > 0:
            return left
        self._last = t
        return 0.0
