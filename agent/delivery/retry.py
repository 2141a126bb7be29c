"""Retry policy: exponential backoff with "equal jitter" (half the step fixed, half random, so a
retry never comes at once), honouring the far side's Retry-After, within a deadline.

Retries end at whichever comes first: ``max_attempts`` attempts that reached an outcome, or
``retry_for`` seconds after the notification was created. A ``critical`` notification is bound
by the deadline only: a page keeps trying (at most every ``max_seconds``) for the whole window.
Waits the far side asked for (deferrals) never spend an attempt; they end at the deadline too.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 15
    base_seconds: float = 1.0
    max_seconds: float = 300.0
    retry_for: float = 86_400.0

    def should_retry(self, attempts_done: int, severity: str = "") -> bool:
        """``attempts_done`` includes the attempt that just failed."""
        return severity == CRITICAL or attempts_done < self.max_attempts

    def within_deadline(self, created_at: float, next_try_at: float) -> bool:
        """Whether a try at ``next_try_at`` is still within ``retry_for`` of creation."""
        return next_try_at <= created_at + self.retry_for

    def deferral(self, deferrals_done: int, retry_after: float | None,
                 rand: float | None = None) -> float:
        """Seconds to wait after the far side said "later": its ``Retry-After`` (and up to a
        tenth more, so a crowd told the same second does not come back at once) when it named
        one, else a backoff on the waits it asked for so far."""
        if retry_after is None:
            return self.delay(deferrals_done, None, rand)
        r = random.random() if rand is None else rand
        return float(retry_after * (1.0 + 0.1 * r))

    def delay(
        self, attempts_done: int, retry_after: float | None, rand: float | None = None
    ) -> float:
        """Seconds to wait before the next attempt; never less than ``retry_after``."""
        cap = min(self.max_seconds, self.base_seconds * 2 ** min(max(attempts_done - 1, 0), 62))
        r = random.random() if rand is None else rand
        # Half fixed, half jitter: spreads a burst of failures without ever retrying at once.
        backoff = cap / 2 + r * cap / 2
        return float(max(backoff, retry_after or 0.0))
