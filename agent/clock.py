"""The one clock: wall time for what is stored, monotonic time for intervals, and the sleep the
outbox loops wait with. ``create_app`` makes one and hands it to everything that reads time, so
tests swap in a ``FakeClock`` and advance it instead of waiting on wall time.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock seconds since the epoch: what the store records and compares."""
        ...

    def monotonic(self) -> float:
        """Seconds that never go back: for intervals and rate limits."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return after ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK = SystemClock()


class FakeClock:
    """A clock for tests: time stands still until ``advance()``, which wakes the sleepers
    whose time came. Starts at ``start`` (default: the real time when made)."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start
        self._mono = 1000.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._mono + seconds, next(self._seq), fut))
        await fut

    @property
    def sleepers(self) -> int:
        """How many sleeps are still waiting for their time."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    def next_wake(self) -> float | None:
        """Seconds until the earliest waiting sleeper's time, or None when none waits."""
        pending = [at for at, _, f in self._sleepers if not f.done()]
        return min(pending) - self._mono if pending else None

    def advance(self, seconds: float) -> int:
        """Move time forward; wake every sleeper whose time came. Returns how many woke."""
        if seconds < 0:
            raise ValueError("a clock does not go back")
        self._now += seconds
        self._mono += seconds
        woke = 0
        while self._sleepers and self._sleepers[0][0] <= self._mono:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():  # a cancelled sleep
                fut.set_result(None)
                woke += 1
        return woke


class _CallableClock:
    """A bare ``() -> float`` wall clock as a Clock (constructors kept compatible)."""

    def __init__(self, now: Callable[[], float]) -> None:
        self.now = now

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def as_clock(clock: Clock | Callable[[], float]) -> Clock:
    """``clock`` itself, or a bare wall-clock function wrapped as a Clock."""
    if isinstance(clock, Clock):
        return clock
    return _CallableClock(clock)


async def wait_event(clock: Clock, event: asyncio.Event, seconds: float) -> bool:
    """Wait until ``event`` is set or ``seconds`` of ``clock`` time passed; True if set."""
    if event.is_set():
        return True
    if seconds <= 0:
        return False
    if isinstance(clock, SystemClock):  # the common case, without two extra tasks
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)
        return event.is_set()
    waiter = asyncio.ensure_future(event.wait())
    sleeper = asyncio.ensure_future(clock.sleep(seconds))
    try:
        await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        sleeper.cancel()
    return event.is_set()
