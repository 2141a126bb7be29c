"""Group commit of delivery outcomes: every outcome that ends while one write runs goes into the
next write, so N deliveries cost one ``complete`` (one statement per kind, one transaction)
instead of N store operations, each with its own savepoint, future and wake-up.

A failed write is retried (a busy database must not turn a delivered page into a re-send after
the claim lease); if the batch still fails, each outcome is written on its own, so one outcome
the database refuses does not take its neighbours with it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence

from agent.observability import get_logger
from agent.store.notifications import Outcome

log = get_logger("dispatcher")

Complete = Callable[[Sequence[Outcome]], Awaitable[None]]


class OutcomeWriter:
    def __init__(self, complete: Complete, retry_pauses: Sequence[float] = (0.1, 0.5, 2.0),
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._complete = complete
        self._pauses = tuple(retry_pauses)
        self._sleep = sleep
        self._pending: list[tuple[Outcome, asyncio.Future[None]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    async def record(self, outcome: Outcome) -> None:
        """Return once ``outcome`` is committed; raise when it could not be."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="outcome-writer")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((outcome, fut))
        self._wakeup.set()
        await fut

    async def close(self) -> None:
        """Write what is pending, then stop."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if not self._pending:
                if self._closing:
                    return
                continue
            batch, self._pending = self._pending, []
            await self._write(batch)
            if self._pending:
                self._wakeup.set()

    async def _write(self, batch: list[tuple[Outcome, asyncio.Future[None]]]) -> None:
        try:
            await self._complete([o for o, _ in batch])
        except Exception as exc:
            log.warning("delivery_record_retry", outcomes=len(batch), error=str(exc))
            # One by one: each is its own store operation (its own savepoint), so what the
            # database refuses fails alone; the retries of all of them overlap.
            await asyncio.gather(*(self._write_one(o, f) for o, f in batch))
            return
        for _, fut in batch:
            if not fut.done():
                fut.set_result(None)

    async def _write_one(self, outcome: Outcome, fut: asyncio.Future[None]) -> None:
        error: BaseException | None = None
        for pause in (*self._pauses, None):
            try:
                await self._complete([outcome])
            except Exception as exc:
                error = exc
                if pause is None:
                    break
                log.warning("delivery_record_retry", notification_id=outcome.id,
                            error=str(exc))
                await self._sleep(pause)
            else:
                error = None
                break
        if fut.done():
            return
        if error is None:
            fut.set_result(None)
        else:
            fut.set_exception(error)
