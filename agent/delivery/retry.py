"""Retry policy: exponential backoff with "equal jitter" (half the step fixed, half random, so a
retry never comes at once), honouring the far side's Retry-After."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    base_seconds: float = 1.0
    max_seconds: float = 300.0

    def should_retry(self, attempts_done: int) -> bool:
        """``attempts_done`` includes the attempt that just failed."""
        return attempts_done < self.max_attempts

    def delay(
        self, attempts_done: int, retry_after: float | None, rand: float | None = None
    ) -> float:
        """Seconds to wait before the next attempt; never less than ``retry_after``."""
        cap = min(self.max_seconds, self.base_seconds * 2 ** max(attempts_done - 1, 0))
        r = random.random() if rand is None else rand
        # Half fixed, half jitter: spreads a burst of failures without ever retrying at once.
        backoff = cap / 2 + r * cap / 2
        return float(max(backoff, retry_after or 0.0))
