"""The idle wait shared by the outbox loops: sleep until the next row is due, or until woken."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from agent.clock import Clock, wait_event


class Waker:
    def __init__(self, poll_interval: float, clock: Clock) -> None:
        self._event = asyncio.Event()
        self._poll = poll_interval
        self._clock = clock
        # When the current idle wait ends (None: not idle): work due sooner must wake it.
        self._idle_until: float | None = None

    def wake(self) -> None:
        """New work may be due: end the current or next idle wait now."""
        self._event.set()

    def wake_by(self, at: float) -> None:
        """Work becomes due at ``at``: wake the idle wait if it would sleep past it (a row
        deferred for less than the poll interval while the loop waits)."""
        if self._idle_until is not None and at < self._idle_until:
            self._event.set()

    def clear(self) -> None:
        """Forget earlier wake-ups; call before looking for work, so none is lost."""
        self._event.clear()

    async def wait(self) -> None:
        """Until woken (no timeout)."""
        await self._event.wait()

    async def sleep(self, seconds: float) -> None:
        await wait_event(self._clock, self._event, seconds)

    async def idle(self, next_due: Callable[[], Awaitable[float | None]]) -> None:
        """Sleep until ``next_due()`` (at most the poll interval), or a wake-up."""
        if self._event.is_set():  # woken while working: look again before any query
            return
        wait = self._poll
        with contextlib.suppress(Exception):  # the store is down: poll again later
            nxt = await next_due()
            if nxt is not None:
                wait = max(0.0, min(self._poll, nxt - self._clock.now()))
        self._idle_until = self._clock.now() + wait
        try:
            await self.sleep(wait)
        finally:
            self._idle_until = None
