"""Exponential back-off for loops that must not spin on a failure, counted per key."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Backoff(Generic[K]):
    """``base * 2**(n-1)`` seconds after the n-th failure in a row of a key, at most ``cap``."""

    def __init__(self, base: float = 1.0, cap: float = 300.0) -> None:
        self.base = base
        self.cap = cap
        self._failures: dict[K, int] = {}

    def failed(self, key: K) -> tuple[int, float]:
        """Count a failure of ``key``; return (failures in a row, seconds to wait)."""
        n = self._failures.get(key, 0) + 1
        self._failures[key] = n
        return n, min(self.cap, self.base * 2.0 ** min(n - 1, 62))

    def succeeded(self, key: K) -> None:
        """``key`` worked: its next failure waits ``base`` again."""
        self._failures.pop(key, None)

    def __len__(self) -> int:
        return len(self._failures)
