"""Blocking calls (a library that does its own I/O, such as Apprise over ``requests``) run on a
bounded thread pool of the channel's own, each with a deadline, mapped to delivery errors.

Not the event loop's default executor: that one is shared by the whole process (DNS look-ups,
file reads), and a provider that hangs would starve it.

A Python thread cannot be killed. A call that overruns its deadline is reported as a retryable
``timeout`` at once, but its thread runs on until the library gives up by itself (its own socket
timeouts), holding its worker. So the pool is bounded twice: at most ``max_workers`` calls run
at a time (a send waits for a free worker, at most ``timeout`` seconds), and when every worker
is held by a call that has already overrun, a send is refused at once as ``throttled`` with
``retry_after`` (a deferral, no attempt spent) instead of queueing behind threads that may never
come back: overruns cannot pile up without limit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
from collections.abc import Callable
from typing import TypeVar

from agent.channels.base import PermanentDeliveryError, RetryableDeliveryError
from agent.domain import FailureReason

T = TypeVar("T")


class BlockingPool:
    """Runs blocking calls on at most ``max_workers`` threads, each given ``timeout`` seconds."""

    def __init__(self, max_workers: int, timeout: float, name: str) -> None:
        self._max = max_workers
        self._timeout = timeout
        self._name = name
        # Threads start on first use; the prefix names them in a thread dump.
        self._pool = cf.ThreadPoolExecutor(max_workers, thread_name_prefix=f"{name}-worker")
        self._slots = asyncio.Semaphore(max_workers)
        self._running = 0  # calls whose thread has not returned yet
        self._overrun = 0  # of those, the ones whose caller stopped waiting (timed out)
        self._closed = False

    @property
    def running(self) -> int:
        """Calls still holding a worker (including overrun ones)."""
        return self._running

    @property
    def overrun(self) -> int:
        """Calls past their deadline whose thread has not returned yet."""
        return self._overrun

    async def run(self, fn: Callable[[], T]) -> T:
        """``fn()`` on a worker thread: its result, or what it raised. Raises a retryable
        ``throttled`` error when no worker is to be had, ``timeout`` past the deadline."""
        if self._closed:
            raise PermanentDeliveryError(FailureReason.CHANNEL_NOT_CONFIGURED,
                                         f"the {self._name} channel is closed")
        if self._overrun >= self._max:
            raise RetryableDeliveryError(
                FailureReason.THROTTLED,
                f"all {self._max} {self._name} workers are held by calls past "
                f"timeout_seconds; not queueing behind them", retry_after=self._timeout)
        try:
            async with asyncio.timeout(self._timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise RetryableDeliveryError(
                FailureReason.THROTTLED,
                f"no {self._name} worker became free within {self._timeout:g} s "
                f"(max_workers {self._max})", retry_after=self._timeout) from None
        loop = asyncio.get_running_loop()
        overran = False

        def finished(_: object) -> None:  # on the worker thread
            try:
                loop.call_soon_threadsafe(release)
            except RuntimeError:  # the loop is closed: nobody is left to wait for the slot
                pass

        def release() -> None:  # back on the loop
            self._running -= 1
            if overran:
                self._overrun -= 1
            self._slots.release()

        try:
            future = self._pool.submit(fn)
        except RuntimeError:  # shut down meanwhile
            self._slots.release()
            raise PermanentDeliveryError(FailureReason.CHANNEL_NOT_CONFIGURED,
                                         f"the {self._name} channel is closed") from None
        self._running += 1
        future.add_done_callback(finished)
        try:
            # On timeout the wrapper is cancelled, which cancels the call only if it has not
            # started; a started one runs on (see the module docstring).
            async with asyncio.timeout(self._timeout):
                return await asyncio.wrap_future(future)
        except TimeoutError:
            if not future.done():
                overran = True
                self._overrun += 1
            raise RetryableDeliveryError(
                FailureReason.TIMEOUT,
                f"{self._name} did not finish within timeout_seconds ({self._timeout:g} s)",
            ) from None

    def close(self) -> None:
        """Refuse new calls and drop queued ones; running threads end on their own."""
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
