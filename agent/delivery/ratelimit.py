"""Token buckets for the rates channels declare (``Rate``: per channel, per destination).

A delivery that finds a bucket empty is deferred to when it will have a token, spending no
attempt. Each bucket is a GCRA (one "theoretical arrival time" per key), so a bucket costs two
floats however many rows wait on it.

Rows turned away for the first time are spread one token interval apart, per priority, in the
order they came, so a backlog of a thousand rows for one Slack channel comes back one at a time
instead of all at once at every token (which would claim and defer every waiting row once per
token). A new high-priority row is not queued behind normal ones: its own line is short, so it
comes back at the next token, where the claim's priority order lets it go first. A row turned
away again (another took its token) waits only for the next token and goes before the rows of
later places (the claim takes older due rows first): at most one extra deferral per token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agent.channels.base import Rate

# Buckets untouched for this long are full again and forgotten (bounded memory).
_IDLE_SECONDS = 3600.0


@dataclass(slots=True)
class _Bucket:
    tat: float  # when the bucket is empty-handed again: "theoretical arrival time"
    # Rows turned away for the first time since the last token was handed out, per line.
    waiting: dict[str, int]
    seen: float


class RateLimiter:
    """Hands out tokens from the buckets of many keys; time comes from the caller."""

    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}
        self._swept = 0.0

    def take(self, rates: Sequence[Rate], now: float, line: str | None = None) -> float | None:
        """None when every bucket had a token (one is taken from each), else when to try
        again (nothing is taken: a row waits for all its buckets at once). ``line`` (the
        priority) spreads first-time waits of that line; None: just the next token."""
        if not rates:
            return None
        self._sweep(now)
        # The bucket that frees last decides the wait: (seconds until free, bucket, interval).
        worst: tuple[float, _Bucket, float] | None = None
        for rate in rates:
            b = self._bucket(rate.key, now)
            interval = 1.0 / rate.per_second
            # GCRA: a token is free when the bucket's debt is within its burst.
            free_in = b.tat - (max(rate.burst, 1.0) - 1.0) * interval - now
            if free_in > 0 and (worst is None or free_in > worst[0]):
                worst = (free_in, b, interval)
        if worst is not None:
            free_in, b, interval = worst
            if line is None:
                return now + free_in
            place = b.waiting.get(line, 0)
            b.waiting[line] = place + 1
            return now + free_in + place * interval
        for rate in rates:
            b = self._buckets[rate.key]
            b.tat = max(b.tat, now) + 1.0 / rate.per_second
            b.waiting.clear()
        return None

    def _bucket(self, key: str, now: float) -> _Bucket:
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = _Bucket(now, {}, now)
        b.seen = now
        return b

    def _sweep(self, now: float) -> None:
        if now - self._swept < _IDLE_SECONDS:
            return
        self._swept = now
        for key in [k for k, b in self._buckets.items()
                    if now - b.seen > _IDLE_SECONDS and b.tat <= now]:
            del self._buckets[key]
